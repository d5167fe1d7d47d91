{#
  The newest version of each key in a raw table that dlt merges (customers, products,
  orders, order_items). dlt's merge already keeps one row per key; this guards staging
  against a duplicate anyway (e.g. a source without a primary key). Portable SQL.
  Leaves a `version_rank` column (always 1) that staging models do not select.
#}
{% macro latest_version(relation, partition_by, order_by) %}
    select *
    from (
        select
            {{ relation }}.*,
            row_number() over (
                partition by {{ partition_by }}
                order by {{ order_by }}
            ) as version_rank
        from {{ relation }}
    ) as versions
    where version_rank = 1
{% endmacro %}
