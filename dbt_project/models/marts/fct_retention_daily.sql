{# Daily cohort retention (DESIGN §2): cohort = UTC date of a user_key's first non-bot event,
   day_number 0..retention_max_day; see README "Retention" and macros/cohort_retention.sql. #}
{{ nightjar.cohort_retention(
    cohort_column='cohort_date',
    period_column='day_number',
    period_days=1,
    max_period=var('retention_max_day')
) }}
