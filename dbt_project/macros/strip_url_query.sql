{#
  strip_url_query(url) -> VARCHAR: the URL without its query string and fragment (everything
  from the first '?' or '#'), so e-mails, tokens and IPs passed as parameters never reach
  the marts. Portable (dbt.split_part).
#}
{% macro strip_url_query(url) -%}
    {{ dbt.split_part(dbt.split_part(url, "'?'", 1), "'#'", 1) }}
{%- endmacro %}
