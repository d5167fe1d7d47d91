{#
  Post-hook of fct_attribution: an order that no longer counts (cancelled now, or moved to
  stg_orders_rejected) has nothing to insert, so delete+insert on order_id cannot remove its
  stored rows; this does, whatever path the run took. Nothing where the model is a table
  (Spark: incremental_materialization), which a rebuild already leaves without those orders.
#}
{% macro delete_uncounted_orders() %}
  {%- if config.get('materialized') == 'incremental' %}
    delete from {{ this }}
    where order_id not in (
        select order_id from {{ ref('stg_orders') }} where not is_cancelled and order_id is not null
    )
  {%- endif %}
{% endmacro %}
