{# Late deliveries per load date: files loaded that night whose landing partition is older
   than the day before (DESIGN §1.1 allows up to 3 days late). Measured by load date, so a
   storm of late files shows the night it lands. A history loaded in one go counts as one
   load in which every old partition is late; rules need weeks of nightly loads first. #}
with files as (

    select
        _file,
        {{ nightjar.landing_partition_date('_file') }} as partition_date,
        cast({{ nightjar.to_utc_timestamp('_loaded_at') }} as date) as load_date,
        rows_loaded,
        lines_read
    from {{ source('raw', 'events_load_log') }}

)

select
    load_date as metric_date,
    cast('native' as {{ dbt.type_string() }}) as source,
    count(*) as files_loaded,
    sum(case when partition_date < {{ nightjar.add_days(-1, 'load_date') }} then 1 else 0 end) as late_files,
    sum(lines_read) as lines_read,
    sum(case when partition_date < {{ nightjar.add_days(-1, 'load_date') }} then lines_read else 0 end) as late_lines,
    {{ nightjar.safe_divide(
        "sum(case when partition_date < " ~ nightjar.add_days(-1, 'load_date') ~ " then lines_read else 0 end)",
        "sum(lines_read)") }} as late_share
from files
where partition_date is not null
group by load_date
