{# Weekly cohort retention (DESIGN §2): cohort = ISO week (Monday) of a user_key's first
   non-bot event, week_number 0..retention_max_week; see README "Retention" and
   macros/cohort_retention.sql. #}
{{ nightjar.cohort_retention(
    cohort_column='cohort_week',
    period_column='week_number',
    period_days=7,
    max_period=var('retention_max_week')
) }}
