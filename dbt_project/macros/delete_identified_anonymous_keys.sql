{#
  Post-hook of the models keyed on user_key: an anonymous_id that got identified is no
  longer a user_key. The strategy (macros/replace_changed_users.sql) already replaces its
  rows from its first anonymous event when its mapping changed since the watermark; this
  deletes whatever rows such a key still has, whatever path the run took.
#}
{% macro delete_identified_anonymous_keys() %}
    delete from {{ this }}
    where user_key in (select anonymous_id from {{ ref('int_identity_map') }} where is_identified)
{% endmacro %}
