{#
  pseudonymise_identifier(expr) -> VARCHAR: an identifier containing '@' (shaped like an
  e-mail address) becomes its keyed HMAC-SHA256 (hex); any other value, null included, passes
  through unchanged. Applied in staging to events' user_id / anonymous_id and to the shop's
  customer_id alike, so the pseudonyms still join. Only '@' values pay for the HMAC.
#}
{% macro pseudonymise_identifier(expr) -%}
    case when {{ expr }} like '%@%' then {{ nightjar.hmac_sha256_hex(nightjar.pii_key(), expr) }} else {{ expr }} end
{%- endmacro %}
