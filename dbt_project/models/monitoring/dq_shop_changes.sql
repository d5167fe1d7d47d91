{# Shop rows whose latest change (`updated_at`) falls on each UTC date, per table. The raw
   shop tables are merged on their keys, so a row counts on the date of its latest
   version: exact for the most recent night, an undercount for rows changed again since.
   Latest version per key as in staging: the Spark lake appends versions instead. #}
{%- set tables = {'customers': 'customer_id', 'products': 'product_id', 'orders': 'order_id'} -%}
with

{% for t, key in tables.items() %}
{{ t }}_source as (

    select * from {{ source('raw', t) }}

),

{{ t }}_latest as (

{{ nightjar.latest_version(t ~ '_source', key, 'updated_at desc, _dlt_load_id desc') }}

),
{% endfor %}

changes as (

    {% for t in tables %}
    select
        cast({{ nightjar.to_utc_timestamp('updated_at') }} as date) as metric_date,
        cast('{{ t }}' as {{ dbt.type_string() }}) as table_name
    from {{ t }}_latest
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    metric_date,
    cast('shop' as {{ dbt.type_string() }}) as source,
    table_name,
    count(*) as rows_changed
from changes
where metric_date is not null
group by metric_date, table_name
