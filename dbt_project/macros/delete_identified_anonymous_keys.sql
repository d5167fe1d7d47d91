{#
  Post-hook of the models keyed on user_key: an anonymous_id that got identified is no
  longer a user_key. The strategy (macros/replace_changed_users.sql) already replaces its
  rows from its first anonymous event when its mapping changed since the watermark; this
  deletes whatever rows such a key still has, whatever path the run took.
  Nothing on Spark, where these models are rebuilt in full (macros/incremental_materialization.sql)
  and a full build gives an identified anonymous_id no rows; an empty hook is skipped.
#}
{% macro delete_identified_anonymous_keys() %}
    {{ return(adapter.dispatch('delete_identified_anonymous_keys', 'nightjar')()) }}
{% endmacro %}

{% macro spark__delete_identified_anonymous_keys() %}
{% endmacro %}

{% macro default__delete_identified_anonymous_keys() %}
    delete from {{ this }}
    where user_key in (select anonymous_id from {{ ref('int_identity_map') }} where is_identified)
{% endmacro %}
