{# Quarantined lines per landing partition date, source and reason, with the partition's
   lines read: reject_rate summed over reasons is the partition's total reject rate.
   A partition without rejects has one row with reason 'none' and zeros, so a quiet day is
   a zero and not a gap. #}
with lines_read as (

    select
        {{ nightjar.landing_partition_date('_file') }} as metric_date,
        sum(lines_read) as lines_read
    from {{ source('raw', 'events_load_log') }}
    group by 1

),

rejected as (

    select
        {{ nightjar.landing_partition_date('_file') }} as metric_date,
        reason,
        count(*) as rejected_rows
    from {{ source('raw', 'events_rejected') }}
    group by 1, 2

),

by_reason as (

    select
        lines_read.metric_date,
        coalesce(rejected.reason, 'none') as reason,
        coalesce(rejected.rejected_rows, 0) as rejected_rows,
        lines_read.lines_read
    from lines_read
    left join rejected
        on rejected.metric_date = lines_read.metric_date
    where lines_read.metric_date is not null

)

select
    metric_date,
    cast('native' as {{ dbt.type_string() }}) as source,
    cast(reason as {{ dbt.type_string() }}) as reason,
    rejected_rows,
    lines_read,
    {{ nightjar.safe_divide('rejected_rows', 'lines_read') }} as reject_rate
from by_reason
