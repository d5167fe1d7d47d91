-- Hand-written DuckDB script computing the same marts as the dbt project
-- (fct_sessions, fct_daily_metrics, fct_retention_daily, fct_retention_weekly,
-- dim_customers, fct_funnel_daily, fct_attribution, fct_channel_daily) from the raw layer,
-- into schema `hw`.
--
-- The baseline of `nightjar bench` section 3 (dbt build vs this script). It follows the
-- definitions of DESIGN.md §2 exactly as the dbt models implement them (the bench's
-- `compare` step checks row-for-row equality), but as one script on one connection:
-- staging/intermediate results are TEMP tables (never persisted), JSON is extracted once
-- with the list form of json_extract_string and only for the fields the marts use, no
-- contracts, no tests, no per-model DDL/metadata round trips.
-- Run:  duckdb warehouse.duckdb, SET VARIABLE nightjar_pii_key = '<the key>', then this script
-- (the bench's `handwritten` step sets the key of the shop's data dir, as dbt reads it).
SET TimeZone = 'UTC';

-- PII (= macros pseudonymise_identifier / hash_email): HMAC-SHA256 (RFC 2104) with the pads
-- of the key computed once; ids containing '@' are pseudonymised, others kept
SET VARIABLE hw_k = (SELECT CASE WHEN octet_length(k) > 64 THEN unhex(sha256(k)) ELSE k END
                     FROM (SELECT encode(getvariable('nightjar_pii_key')::VARCHAR) AS k));
SET VARIABLE hw_k = getvariable('hw_k') || repeat('\x00'::BLOB, 64 - octet_length(getvariable('hw_k')));
SET VARIABLE hw_ipad = xor(getvariable('hw_k')::BIT, repeat('\x36'::BLOB, 64)::BIT)::BLOB;
SET VARIABLE hw_opad = xor(getvariable('hw_k')::BIT, repeat('\x5c'::BLOB, 64)::BIT)::BLOB;
CREATE OR REPLACE TEMP MACRO hw_hmac(x) AS
    sha256(getvariable('hw_opad') || unhex(sha256(getvariable('hw_ipad') || encode(x))));
CREATE OR REPLACE TEMP MACRO hw_pseudo(x) AS CASE WHEN x LIKE '%@%' THEN hw_hmac(x) ELSE x END;
CREATE OR REPLACE TEMP MACRO hw_strip_url(u) AS split_part(split_part(u, '?', 1), '#', 1);
CREATE OR REPLACE TEMP MACRO hw_url_param(u, name) AS nullif(regexp_extract(u, '[?&]' || name || '=([^&#]*)', 1), '');
DROP SCHEMA IF EXISTS hw CASCADE;
CREATE SCHEMA hw;

-- currency rates (= dbt seed currency_rates)
CREATE OR REPLACE TEMP TABLE rates AS
SELECT * FROM (VALUES ('USD', 1.0::DOUBLE), ('EUR', 1.0869565217391304::DOUBLE), ('GBP', 1.2658227848101264::DOUBLE))
    AS t(currency, usd_per_unit);

-- events: one row per event_id (earliest received_at, then _loaded_at, _file, _line)
CREATE OR REPLACE TEMP TABLE ev AS
WITH d AS (
    SELECT event_id, event_name, "timestamp", received_at, anonymous_id, user_id, context, _loaded_at
    FROM raw.events
    QUALIFY row_number() OVER (
        PARTITION BY event_id
        ORDER BY coalesce(timezone('UTC', received_at), timezone('UTC', "timestamp")), _loaded_at, _file, _line
    ) = 1
), j AS (
    SELECT
        event_id,
        replace(replace(lower(trim(event_name)), ' ', '_'), '-', '_') AS event_name,
        timezone('UTC', "timestamp") AS ts,
        timezone('UTC', received_at) AS received_at,
        hw_pseudo(anonymous_id) AS anonymous_id,
        hw_pseudo(nullif(trim(user_id), '')) AS user_id,
        json_extract_string(context::VARCHAR, ['$.page.path', '$.page.referrer', '$.campaign.source',
            '$.campaign.medium', '$.campaign.name', '$.user_agent', '$.geo.country', '$.page.url']) AS c
    FROM d
)
SELECT event_id, event_name, ts, cast(ts AS DATE) AS event_date, received_at, anonymous_id, user_id,
    hw_strip_url(c[1]) AS page_path, hw_strip_url(c[2]) AS referrer,
    coalesce(c[3], hw_url_param(c[8], 'utm_source')) AS utm_source,
    coalesce(c[4], hw_url_param(c[8], 'utm_medium')) AS utm_medium,
    coalesce(c[5], hw_url_param(c[8], 'utm_campaign')) AS utm_campaign,
    c[6] AS user_agent, c[7] AS country,
    coalesce(regexp_matches(c[6], 'bot|crawler|spider|crawl|slurp|headlesschrome|phantomjs|curl|wget|python-requests|python-urllib|httpx|aiohttp|go-http-client|java/|okhttp|scrapy|libwww|apache-httpclient|node-fetch|axios|lighthouse|pingdom', 'i'), false) AS is_bot
FROM j;

-- identity stitching: the most recent user_id per anonymous_id (all events, bots included)
CREATE OR REPLACE TEMP TABLE idmap AS
SELECT anonymous_id, arg_max(user_id, (ts, received_at, event_id)) AS identified_user_id
FROM ev WHERE user_id IS NOT NULL
GROUP BY anonymous_id;

-- non-bot events with user_key
CREATE OR REPLACE TEMP TABLE st AS
SELECT
    coalesce(ev.user_id, idmap.identified_user_id, ev.anonymous_id) AS user_key,
    coalesce(ev.user_id, idmap.identified_user_id) IS NOT NULL AS is_identified_user,
    ev.event_id, ev.event_name, ev.ts, ev.event_date,
    ev.page_path, ev.referrer, ev.utm_source, ev.utm_medium, ev.utm_campaign, ev.country,
    CASE
        WHEN ev.user_agent IS NULL OR trim(ev.user_agent) = '' THEN 'unknown'
        WHEN regexp_matches(ev.user_agent, 'ipad|tablet|kindle|silk|playbook', 'i') THEN 'tablet'
        WHEN regexp_matches(ev.user_agent, 'mobi|iphone|ipod|android|blackberry|opera mini|windows phone', 'i') THEN 'mobile'
        ELSE 'desktop'
    END AS device_type
FROM ev LEFT JOIN idmap ON ev.anonymous_id = idmap.anonymous_id
WHERE NOT ev.is_bot;

CREATE OR REPLACE TEMP TABLE activity AS
SELECT user_key, event_date AS activity_date FROM st GROUP BY ALL;

-- default channel grouping (the rules of the dbt seed channel_rules, written out as one CASE):
-- campaign source/medium first, else the referrer, else direct
CREATE OR REPLACE TEMP MACRO channel_of(src, med, ref) AS (
    CASE
        WHEN coalesce(trim(src), '') <> '' OR coalesce(trim(med), '') <> '' THEN CASE
            WHEN regexp_matches(coalesce(trim(src), ''), '^([a-z0-9-]+\.)*(google|bing|yahoo|duckduckgo|baidu|yandex|ecosia|naver|startpage|qwant|brave|ask|aol)(\.[a-z.]+)?$', 'i')
                 AND regexp_matches(coalesce(trim(med), ''), '^(.*cp.*|ppc|retargeting|paid.*)$', 'i') THEN 'paid_search'
            WHEN regexp_matches(coalesce(trim(src), ''), '^([a-z0-9-]+\.)*(facebook|fb|instagram|ig|tiktok|twitter|t\.co|x|linkedin|lnkd\.in|pinterest|reddit|snapchat|youtube|threads|tumblr|quora|meta)(\.[a-z.]+)?$', 'i')
                 AND regexp_matches(coalesce(trim(med), ''), '^(.*cp.*|ppc|retargeting|paid.*)$', 'i') THEN 'paid_social'
            WHEN regexp_matches(coalesce(trim(med), ''), '^(display|banner|expandable|interstitial|cpm)$', 'i') THEN 'display'
            WHEN regexp_matches(coalesce(trim(med), ''), '^(.*cp.*|ppc|retargeting|paid.*)$', 'i') THEN 'other'
            WHEN regexp_matches(coalesce(trim(src), ''), '^([a-z0-9-]+\.)*(facebook|fb|instagram|ig|tiktok|twitter|t\.co|x|linkedin|lnkd\.in|pinterest|reddit|snapchat|youtube|threads|tumblr|quora|meta)(\.[a-z.]+)?$', 'i')
                 OR regexp_matches(coalesce(trim(med), ''), '^(social|social-network|social-media|sm|social network|social media)$', 'i') THEN 'organic_social'
            WHEN regexp_matches(coalesce(trim(src), ''), '^([a-z0-9-]+\.)*(google|bing|yahoo|duckduckgo|baidu|yandex|ecosia|naver|startpage|qwant|brave|ask|aol)(\.[a-z.]+)?$', 'i')
                 OR lower(coalesce(trim(med), '')) = 'organic' THEN 'organic_search'
            WHEN lower(coalesce(trim(med), '')) IN ('referral', 'app', 'link') THEN 'referral'
            WHEN lower(coalesce(trim(src), '')) IN ('email', 'e-mail', 'e_mail', 'e mail') OR lower(coalesce(trim(med), '')) IN ('email', 'e-mail', 'e_mail', 'e mail') THEN 'email'
            WHEN lower(coalesce(trim(med), '')) = 'affiliate' THEN 'affiliate'
            ELSE 'other' END
        WHEN coalesce(trim(ref), '') <> '' THEN CASE
            WHEN regexp_matches(coalesce(trim(ref), ''), '^[a-z]+://([^/]*\.)?shop\.nightjar\.example(:[0-9]+)?(/|$)', 'i') THEN 'direct'
            WHEN regexp_matches(coalesce(trim(ref), ''), '^[a-z]+://([^/]*\.)?(google|bing|yahoo|duckduckgo|baidu|yandex|ecosia|naver|startpage|qwant|brave|ask|aol)\.[a-z.]+(:[0-9]+)?(/|$)', 'i') THEN 'organic_search'
            WHEN regexp_matches(coalesce(trim(ref), ''), '^[a-z]+://([^/]*\.)?(facebook|fb|instagram|tiktok|twitter|t|x|linkedin|lnkd|pinterest|reddit|snapchat|youtube|threads|tumblr|quora)\.[a-z.]+(:[0-9]+)?(/|$)', 'i') THEN 'organic_social'
            ELSE 'referral' END
        ELSE 'direct' END
);

-- sessions: gap > 30 minutes starts a new one
CREATE TABLE hw.fct_sessions AS
WITH flagged AS (
    SELECT *,
        CASE WHEN lag(ts) OVER w IS NULL OR ts > lag(ts) OVER w + INTERVAL 30 MINUTE THEN 1 ELSE 0 END AS is_start
    FROM st
    WINDOW w AS (PARTITION BY user_key ORDER BY ts, event_id)
), numbered AS (
    SELECT *, sum(is_start) OVER (PARTITION BY user_key ORDER BY ts, event_id
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
    FROM flagged
), agg AS (
    SELECT user_key, session_number,
        min(ts) AS session_start, max(ts) AS session_end, count(*) AS events,
        count(*) FILTER (WHERE event_name = 'page_viewed') AS page_views,
        count(*) FILTER (WHERE event_name = 'product_viewed') AS product_views,
        count(*) FILTER (WHERE event_name = 'product_added_to_cart') AS cart_adds,
        count(*) FILTER (WHERE event_name = 'checkout_started') AS checkouts,
        count(*) FILTER (WHERE event_name = 'purchase_completed') AS purchases,
        max(CASE WHEN is_identified_user THEN user_key END) AS customer_id,
        arg_min(struct_pack(page_path, referrer, utm_source, utm_medium, utm_campaign, device_type, country),
                (is_start = 0, ts, event_id)) AS f
    FROM numbered
    GROUP BY user_key, session_number
)
SELECT
    md5(user_key || '|' || cast(session_start AS VARCHAR)) AS session_id,
    user_key, customer_id,
    cast(session_start AS DATE) AS session_date, session_start, session_end,
    cast(floor(epoch(session_end) - epoch(session_start)) AS BIGINT) AS duration_seconds,
    events, page_views, product_views, cart_adds, checkouts, purchases,
    (epoch(session_end) - epoch(session_start) >= 10 OR page_views >= 2 OR purchases > 0) AS is_engaged,
    NOT (epoch(session_end) - epoch(session_start) >= 10 OR page_views >= 2 OR purchases > 0) AS is_bounce,
    purchases > 0 AS converted,
    f.page_path AS landing_page, f.referrer, f.utm_source, f.utm_medium, f.utm_campaign,
    channel_of(f.utm_source, f.utm_medium, f.referrer) AS channel, f.device_type, f.country,
    session_number
FROM agg;

-- shop staging (dlt merges on the keys; the newest version is kept defensively, as dbt does)
CREATE OR REPLACE TEMP TABLE cust AS
SELECT hw_pseudo(customer_id) AS customer_id,
    CASE WHEN email IS NULL OR trim(email) = '' THEN NULL ELSE hw_hmac(lower(trim(email))) END AS email_hash,
    upper(trim(country)) AS country, created_at
FROM raw.customers
QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, _dlt_load_id DESC) = 1;

-- bad orders (unknown currency or customer or status, negative or missing total) count nowhere
CREATE OR REPLACE TEMP TABLE orders AS
SELECT o.order_id, hw_pseudo(o.customer_id) AS customer_id, lower(trim(o.status)) AS status,
    cast(o.total_amount AS DOUBLE) * r.usd_per_unit AS total_amount_usd,
    o.created_at, cast(o.created_at AS DATE) AS order_date,
    lower(trim(o.status)) = 'cancelled' AS is_cancelled, lower(trim(o.status)) = 'refunded' AS is_refunded
FROM (SELECT * FROM raw.orders QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC, _dlt_load_id DESC) = 1) o
JOIN rates r ON upper(trim(o.currency)) = r.currency
WHERE o.total_amount >= 0
  AND lower(trim(o.status)) IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')
  AND hw_pseudo(o.customer_id) IN (SELECT customer_id FROM cust);

CREATE OR REPLACE TEMP TABLE order_units AS
SELECT order_id, sum(cast(quantity AS BIGINT)) AS units
FROM (SELECT * FROM raw.order_items QUALIFY row_number() OVER (PARTITION BY order_id, line_number ORDER BY _dlt_load_id DESC) = 1)
WHERE order_id IN (SELECT order_id FROM orders)
GROUP BY order_id;

-- daily metrics
CREATE TABLE hw.fct_daily_metrics AS
WITH bounds AS (
    SELECT min(d) AS first_date, max(d) AS last_date
    FROM (SELECT activity_date AS d FROM activity UNION ALL SELECT order_date FROM orders)
), spine AS (
    SELECT cast(range AS DATE) AS metric_date
    FROM bounds, range(bounds.first_date, bounds.last_date + INTERVAL 1 DAY, INTERVAL 1 DAY)
), dau AS (
    SELECT activity_date AS metric_date, count(*) AS dau FROM activity GROUP BY 1
), rolling AS (
    -- each active day makes its user count toward WAU for 7 days and MAU for 30
    SELECT cast(activity_date + i * INTERVAL 1 DAY AS DATE) AS metric_date,
        count(DISTINCT user_key) FILTER (WHERE i < 7) AS wau, count(DISTINCT user_key) AS mau
    FROM activity, range(30) AS t(i)
    GROUP BY 1
), new_users AS (
    SELECT first_date AS metric_date, count(*) AS new_users
    FROM (SELECT user_key, min(activity_date) AS first_date FROM activity GROUP BY 1) GROUP BY 1
), sess AS (
    SELECT session_date AS metric_date, count(*) AS sessions,
        avg(cast(duration_seconds AS DOUBLE)) AS avg_session_duration_seconds,
        count(*) FILTER (WHERE is_bounce) AS bounces, count(*) FILTER (WHERE converted) AS converted_sessions
    FROM hw.fct_sessions GROUP BY 1
), ord AS (
    SELECT order_date AS metric_date, count(*) AS orders, sum(coalesce(u.units, 0)) AS units,
        sum(total_amount_usd) AS gross_revenue,
        sum(CASE WHEN is_refunded THEN total_amount_usd ELSE 0 END) AS refunds
    FROM orders LEFT JOIN order_units u USING (order_id)
    WHERE NOT is_cancelled GROUP BY 1
), j AS (
    SELECT spine.metric_date,
        coalesce(dau.dau, 0) AS dau, coalesce(rolling.wau, 0) AS wau, coalesce(rolling.mau, 0) AS mau,
        coalesce(new_users.new_users, 0) AS new_users, coalesce(sess.sessions, 0) AS sessions,
        sess.avg_session_duration_seconds, coalesce(sess.bounces, 0) AS bounces,
        coalesce(sess.converted_sessions, 0) AS converted_sessions,
        coalesce(ord.orders, 0) AS orders, coalesce(ord.units, 0) AS units,
        coalesce(ord.gross_revenue, 0) AS gross_revenue, coalesce(ord.refunds, 0) AS refunds
    FROM spine
    LEFT JOIN dau USING (metric_date) LEFT JOIN rolling USING (metric_date)
    LEFT JOIN new_users USING (metric_date) LEFT JOIN sess USING (metric_date) LEFT JOIN ord USING (metric_date)
)
SELECT metric_date, cast(dau AS BIGINT) AS dau, cast(wau AS BIGINT) AS wau, cast(mau AS BIGINT) AS mau,
    dau / nullif(mau, 0)::DOUBLE AS stickiness,
    cast(new_users AS BIGINT) AS new_users, cast(sessions AS BIGINT) AS sessions,
    avg_session_duration_seconds,
    bounces / nullif(sessions, 0)::DOUBLE AS bounce_rate,
    converted_sessions / nullif(sessions, 0)::DOUBLE AS conversion_rate,
    cast(orders AS BIGINT) AS orders, cast(units AS BIGINT) AS units,
    cast(gross_revenue AS DOUBLE) AS gross_revenue, cast(refunds AS DOUBLE) AS refunds,
    cast(gross_revenue - refunds AS DOUBLE) AS net_revenue,
    gross_revenue / nullif(orders, 0)::DOUBLE AS aov,
    (gross_revenue - refunds) / nullif(dau, 0)::DOUBLE AS arpdau
FROM j;

-- retention, daily cohorts (day 0..30; only periods that have started)
CREATE TABLE hw.fct_retention_daily AS
WITH fs AS (
    SELECT user_key, min(activity_date) AS cohort_date FROM activity GROUP BY 1
), last_day AS (
    SELECT max(activity_date) AS d FROM activity
), ud AS (
    SELECT fs.cohort_date, a.user_key, date_diff('day', fs.cohort_date, a.activity_date) AS day_number
    FROM activity a JOIN fs USING (user_key)
), cohorts AS (
    SELECT cohort_date, count(*) AS cohort_size FROM fs GROUP BY 1
), grid AS (
    SELECT c.cohort_date, n AS day_number, c.cohort_size
    FROM cohorts c, range(31) AS t(n), last_day
    WHERE c.cohort_date + cast(n AS INTEGER) <= last_day.d
), exact AS (
    SELECT cohort_date, day_number, count(*) AS active_users FROM ud WHERE day_number <= 30 GROUP BY 1, 2
), last_per_user AS (
    SELECT cohort_date, max(day_number) AS last_n FROM ud GROUP BY cohort_date, user_key
), hist AS (
    -- users whose last active day number is >= n: a reverse cumulative count per cohort
    SELECT cohort_date, least(last_n, 30) AS n, count(*) AS users FROM last_per_user GROUP BY 1, 2
)
SELECT g.cohort_date, cast(g.day_number AS BIGINT) AS day_number, cast(g.cohort_size AS BIGINT) AS cohort_size,
    cast(coalesce(e.active_users, 0) AS BIGINT) AS active_users,
    coalesce(e.active_users, 0) / nullif(g.cohort_size, 0)::DOUBLE AS retention_rate,
    cast(coalesce(u.on_or_after, 0) AS BIGINT) AS active_users_on_or_after,
    coalesce(u.on_or_after, 0) / nullif(g.cohort_size, 0)::DOUBLE AS unbounded_retention_rate
FROM grid g
LEFT JOIN exact e ON g.cohort_date = e.cohort_date AND g.day_number = e.day_number
LEFT JOIN (
    SELECT g2.cohort_date, g2.day_number, sum(h.users) AS on_or_after
    FROM grid g2 JOIN hist h ON h.cohort_date = g2.cohort_date AND h.n >= g2.day_number
    GROUP BY 1, 2
) u ON g.cohort_date = u.cohort_date AND g.day_number = u.day_number;

-- retention, ISO-week cohorts (week 0..12)
CREATE TABLE hw.fct_retention_weekly AS
WITH aw AS (
    SELECT DISTINCT user_key, cast(date_trunc('week', activity_date) AS DATE) AS activity_week FROM activity
), fs AS (
    SELECT user_key, min(activity_week) AS cohort_week FROM aw GROUP BY 1
), last_day AS (
    SELECT max(activity_date) AS d FROM activity
), uw AS (
    SELECT fs.cohort_week, aw.user_key, date_diff('day', fs.cohort_week, aw.activity_week) // 7 AS week_number
    FROM aw JOIN fs USING (user_key)
), cohorts AS (
    SELECT cohort_week, count(*) AS cohort_size FROM fs GROUP BY 1
), grid AS (
    SELECT c.cohort_week, n AS week_number, c.cohort_size
    FROM cohorts c, range(13) AS t(n), last_day
    WHERE c.cohort_week + cast(7 * n AS INTEGER) <= last_day.d
), exact AS (
    SELECT cohort_week, week_number, count(*) AS active_users FROM uw WHERE week_number <= 12 GROUP BY 1, 2
), hist AS (
    SELECT cohort_week, least(last_n, 12) AS n, count(*) AS users
    FROM (SELECT cohort_week, max(week_number) AS last_n FROM uw GROUP BY cohort_week, user_key) GROUP BY 1, 2
)
SELECT g.cohort_week, cast(g.week_number AS BIGINT) AS week_number, cast(g.cohort_size AS BIGINT) AS cohort_size,
    cast(coalesce(e.active_users, 0) AS BIGINT) AS active_users,
    coalesce(e.active_users, 0) / nullif(g.cohort_size, 0)::DOUBLE AS retention_rate,
    cast(coalesce(u.on_or_after, 0) AS BIGINT) AS active_users_on_or_after,
    coalesce(u.on_or_after, 0) / nullif(g.cohort_size, 0)::DOUBLE AS unbounded_retention_rate
FROM grid g
LEFT JOIN exact e ON g.cohort_week = e.cohort_week AND g.week_number = e.week_number
LEFT JOIN (
    SELECT g2.cohort_week, g2.week_number, sum(h.users) AS on_or_after
    FROM grid g2 JOIN hist h ON h.cohort_week = g2.cohort_week AND h.n >= g2.week_number
    GROUP BY 1, 2
) u ON g.cohort_week = u.cohort_week AND g.week_number = u.week_number;

-- customers with RFM scores
CREATE TABLE hw.dim_customers AS
WITH as_of AS (
    SELECT max(d) AS as_of_date FROM (SELECT activity_date AS d FROM activity UNION ALL SELECT order_date FROM orders)
), co AS (
    SELECT customer_id, min(created_at) AS first_order_at, max(created_at) AS last_order_at, count(*) AS orders_count,
        sum(total_amount_usd) AS gross_revenue_usd,
        sum(total_amount_usd) - sum(CASE WHEN is_refunded THEN total_amount_usd ELSE 0 END) AS net_revenue_usd
    FROM orders WHERE NOT is_cancelled GROUP BY 1
), scored AS (
    SELECT co.*, date_diff('day', cast(last_order_at AS DATE), as_of.as_of_date) AS recency_days,
        ntile(5) OVER (ORDER BY last_order_at, customer_id) AS r_score,
        ntile(5) OVER (ORDER BY orders_count, customer_id) AS f_score,
        ntile(5) OVER (ORDER BY net_revenue_usd, customer_id) AS m_score
    FROM co, as_of
), first_sessions AS (
    SELECT customer_id, arg_min(struct_pack(utm_source, referrer), (session_start, session_id)) AS s
    FROM hw.fct_sessions WHERE customer_id IS NOT NULL GROUP BY 1
)
SELECT c.customer_id, c.email_hash, c.country, c.created_at, s.first_order_at, s.last_order_at,
    cast(coalesce(s.orders_count, 0) AS BIGINT) AS orders_count,
    cast(coalesce(s.gross_revenue_usd, 0) AS DOUBLE) AS gross_revenue_usd,
    cast(coalesce(s.net_revenue_usd, 0) AS DOUBLE) AS net_revenue_usd,
    cast(s.recency_days AS BIGINT) AS recency_days,
    cast(s.r_score AS BIGINT) AS r_score, cast(s.f_score AS BIGINT) AS f_score, cast(s.m_score AS BIGINT) AS m_score,
    CASE
        WHEN s.customer_id IS NULL THEN 'Prospect'
        WHEN s.r_score >= 4 AND s.f_score >= 4 AND s.m_score >= 4 THEN 'Champions'
        WHEN s.r_score >= 3 AND s.f_score >= 4 THEN 'Loyal'
        WHEN s.r_score >= 4 AND s.f_score = 1 THEN 'New'
        WHEN s.r_score >= 3 AND s.f_score >= 2 THEN 'Potential Loyalist'
        WHEN s.r_score <= 2 AND s.f_score >= 3 THEN 'At Risk'
        WHEN s.r_score = 2 THEN 'Hibernating'
        WHEN s.r_score = 1 THEN 'Lost'
        ELSE 'Needs Attention'
    END AS rfm_segment,
    CASE
        WHEN f.customer_id IS NULL THEN 'unknown'
        WHEN f.s.utm_source IS NOT NULL AND trim(f.s.utm_source) <> '' THEN lower(trim(f.s.utm_source))
        WHEN f.s.referrer IS NOT NULL AND trim(f.s.referrer) <> '' THEN 'referral'
        ELSE 'direct'
    END AS acquisition_channel,
    as_of.as_of_date
FROM cust c CROSS JOIN as_of
LEFT JOIN scored s ON c.customer_id = s.customer_id
LEFT JOIN first_sessions f ON c.customer_id = f.customer_id;

-- daily funnel (furthest step per user and day)
CREATE TABLE hw.fct_funnel_daily AS
WITH us AS (
    SELECT user_key, event_date,
        max(CASE event_name WHEN 'page_viewed' THEN 1 WHEN 'product_viewed' THEN 2 WHEN 'product_added_to_cart' THEN 3
            WHEN 'checkout_started' THEN 4 WHEN 'purchase_completed' THEN 5 ELSE 0 END) AS max_step
    FROM st GROUP BY 1, 2
), d AS (
    SELECT event_date AS metric_date,
        count(*) FILTER (WHERE max_step >= 1) AS viewers, count(*) FILTER (WHERE max_step >= 2) AS product_viewers,
        count(*) FILTER (WHERE max_step >= 3) AS cart_adders, count(*) FILTER (WHERE max_step >= 4) AS checkout_starters,
        count(*) FILTER (WHERE max_step >= 5) AS purchasers
    FROM us GROUP BY 1
)
SELECT metric_date, viewers, product_viewers, cart_adders, checkout_starters, purchasers,
    product_viewers / nullif(viewers, 0)::DOUBLE AS view_to_product_rate,
    cart_adders / nullif(product_viewers, 0)::DOUBLE AS product_to_cart_rate,
    checkout_starters / nullif(cart_adders, 0)::DOUBLE AS cart_to_checkout_rate,
    purchasers / nullif(checkout_starters, 0)::DOUBLE AS checkout_to_purchase_rate,
    purchasers / nullif(viewers, 0)::DOUBLE AS overall_conversion_rate
FROM d;

-- attribution: an order's touchpoints are its customer's sessions that start in the 30 days up
-- to the order; six models, every touchpoint under every model; no touchpoint -> one direct row
CREATE OR REPLACE TEMP TABLE attribution_models AS
SELECT * FROM (VALUES ('first_touch'), ('last_touch'), ('last_non_direct_touch'), ('linear'), ('time_decay'),
    ('position_based')) AS t(model);

CREATE TABLE hw.fct_attribution AS
WITH o AS (
    SELECT order_id, customer_id, created_at, order_date, total_amount_usd, is_refunded FROM orders WHERE NOT is_cancelled
), tp AS (
    SELECT o.order_id, s.session_id, s.session_start, s.channel,
        (epoch(o.created_at) - epoch(s.session_start)) / 86400.0 AS age_days,
        row_number() OVER (PARTITION BY o.order_id ORDER BY s.session_start, s.session_id) AS k,
        count(*) OVER (PARTITION BY o.order_id) AS n
    FROM o JOIN hw.fct_sessions s
        ON s.customer_id = o.customer_id AND s.session_start BETWEEN o.created_at - INTERVAL 30 DAY AND o.created_at
), per_order AS (
    SELECT order_id, coalesce(max(k) FILTER (WHERE channel <> 'direct'), max(n)) AS k_last_non_direct,
        sum(pow(0.5, age_days / 7)) AS decay_total
    FROM tp GROUP BY order_id
), credited AS (
    SELECT tp.*, m.model,
        CASE m.model
            WHEN 'first_touch' THEN (k = 1)::DOUBLE
            WHEN 'last_touch' THEN (k = n)::DOUBLE
            WHEN 'last_non_direct_touch' THEN (k = p.k_last_non_direct)::DOUBLE
            WHEN 'linear' THEN 1.0 / n
            WHEN 'time_decay' THEN pow(0.5, age_days / 7) / p.decay_total
            ELSE CASE WHEN n = 1 THEN 1.0 WHEN n = 2 THEN 0.5 WHEN k = 1 OR k = n THEN 0.4 ELSE 0.2 / (n - 2) END
        END AS credit
    FROM tp JOIN per_order p USING (order_id) CROSS JOIN attribution_models m
)
SELECT o.order_id, o.customer_id, o.order_date, o.created_at AS ordered_at, c.model AS attribution_model,
    c.k AS touchpoint_number, c.n AS touchpoints, c.session_id, c.session_start, c.channel, true AS is_attributed,
    c.age_days AS days_before_order, c.credit, c.credit * o.total_amount_usd AS credited_revenue_usd,
    o.total_amount_usd AS order_revenue_usd, o.is_refunded
FROM credited c JOIN o USING (order_id)
UNION ALL
SELECT o.order_id, o.customer_id, o.order_date, o.created_at, m.model, 0, 0, NULL, NULL, 'direct', false, NULL,
    1.0, o.total_amount_usd, o.total_amount_usd, o.is_refunded
FROM o CROSS JOIN attribution_models m
WHERE o.order_id NOT IN (SELECT order_id FROM tp);

-- per day and channel: sessions (by start date) and credited orders / revenue (by order date)
CREATE TABLE hw.fct_channel_daily AS
WITH s AS (
    SELECT session_date AS metric_date, channel, count(*) AS sessions, count(*) FILTER (WHERE converted) AS converted_sessions
    FROM hw.fct_sessions GROUP BY ALL
), a AS (
    SELECT order_date AS metric_date, channel,
        sum(credit) FILTER (WHERE attribution_model = 'first_touch') AS ft_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'first_touch') AS ft_r,
        sum(credit) FILTER (WHERE attribution_model = 'last_touch') AS lt_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'last_touch') AS lt_r,
        sum(credit) FILTER (WHERE attribution_model = 'last_non_direct_touch') AS lnd_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'last_non_direct_touch') AS lnd_r,
        sum(credit) FILTER (WHERE attribution_model = 'linear') AS li_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'linear') AS li_r,
        sum(credit) FILTER (WHERE attribution_model = 'time_decay') AS td_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'time_decay') AS td_r,
        sum(credit) FILTER (WHERE attribution_model = 'position_based') AS pb_o,
        sum(credited_revenue_usd) FILTER (WHERE attribution_model = 'position_based') AS pb_r
    FROM hw.fct_attribution GROUP BY ALL
)
SELECT metric_date, channel, coalesce(s.sessions, 0) AS sessions, coalesce(s.converted_sessions, 0) AS converted_sessions,
    coalesce(ft_o, 0) AS attributed_orders_first_touch, coalesce(ft_r, 0) AS attributed_revenue_usd_first_touch,
    coalesce(lt_o, 0) AS attributed_orders_last_touch, coalesce(lt_r, 0) AS attributed_revenue_usd_last_touch,
    coalesce(lnd_o, 0) AS attributed_orders_last_non_direct_touch,
    coalesce(lnd_r, 0) AS attributed_revenue_usd_last_non_direct_touch,
    coalesce(li_o, 0) AS attributed_orders_linear, coalesce(li_r, 0) AS attributed_revenue_usd_linear,
    coalesce(td_o, 0) AS attributed_orders_time_decay, coalesce(td_r, 0) AS attributed_revenue_usd_time_decay,
    coalesce(pb_o, 0) AS attributed_orders_position_based, coalesce(pb_r, 0) AS attributed_revenue_usd_position_based
FROM s FULL OUTER JOIN a USING (metric_date, channel);

DROP TABLE attribution_models; DROP TABLE ev; DROP TABLE idmap; DROP TABLE st; DROP TABLE activity; DROP TABLE orders; DROP TABLE order_units; DROP TABLE rates;
