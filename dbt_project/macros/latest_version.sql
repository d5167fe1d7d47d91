{#
  The newest version of each key in a raw shop table (customers, products, orders,
  order_items). On DuckDB dlt merges on the key, so this changes nothing there (and guards
  against a duplicate); in the Spark engine's parquet lake dlt appends every version, and
  this picks the latest. Portable SQL.
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
