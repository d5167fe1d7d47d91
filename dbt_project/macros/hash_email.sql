{#
  hash_email(email) -> VARCHAR: sha256 of the trimmed, lower-cased e-mail (null stays null).
#}
{% macro hash_email(email) -%}
    case when {{ email }} is null or trim({{ email }}) = '' then null
         else {{ nightjar.sha256_hex('lower(trim(' ~ email ~ '))') }} end
{%- endmacro %}
