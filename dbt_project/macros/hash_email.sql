{#
  hash_email(email) -> VARCHAR: keyed HMAC-SHA256 (hex, macro hmac_sha256_hex with pii_key())
  of the trimmed, lower-cased e-mail; null or blank stays null. Keyed, so a list of guessed
  addresses cannot be hashed and matched without the key.
#}
{% macro hash_email(email) -%}
    case when {{ email }} is null or trim({{ email }}) = '' then null
         else {{ nightjar.hmac_sha256_hex(nightjar.pii_key(), 'lower(trim(' ~ email ~ '))') }} end
{%- endmacro %}
