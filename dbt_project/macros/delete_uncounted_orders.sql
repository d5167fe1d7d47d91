{#
  Post-hook of fct_attribution: an order that no longer counts (cancelled now, or moved to
  stg_orders_rejected) has nothing to insert, so delete+insert on order_id cannot remove its
  stored rows; this does, whatever path the run took. Nothing on Spark, where the model is
  rebuilt in full (incremental_materialization) and plain parquet has no DELETE.
#}
{% macro delete_uncounted_orders() %}
    {{ return(adapter.dispatch('delete_uncounted_orders', 'nightjar')()) }}
{% endmacro %}

{% macro spark__delete_uncounted_orders() %}
{% endmacro %}

{% macro default__delete_uncounted_orders() %}
    delete from {{ this }}
    where order_id not in (
        select order_id from {{ ref('stg_orders') }} where not is_cancelled and order_id is not null
    )
{% endmacro %}
