{#
  Spark variants of dbt's own cross-database macros, found first through the project's
  `dispatch` config (dbt_project.yml).
    safe_cast: try_cast. dbt-spark renders a plain cast, which fails the query under
               Spark 4's ANSI mode; DuckDB's (and DESIGN's) meaning is null on a bad value.
#}
{% macro spark__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}

{#
    load_csv_rows (seeds): the values as escaped SQL literals. dbt-spark's session method
               pastes bindings into the SQL unescaped, so a quote (currency_rates' notes)
               breaks the statement and a backslash (channel_rules' regular expressions)
               silently loses its meaning in Spark's string literals.
#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    {%- set value = row[loop.index0] -%}
                    {%- if value is none -%}
                        cast(null as {{ type }})
                    {%- else -%}
                        cast('{{ (value | string).replace("\\", "\\\\").replace("'", "\\'") }}' as {{ type }})
                    {%- endif -%}
                    {%- if not loop.last %}, {% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{#
    escape_single_quotes: backslashes too. In Spark string literals a backslash escapes the
               next character, so a unit test fixture's regular expression (channel_rules'
               `\.`) would reach the model without it; dbt-spark escapes only quotes.
#}
{% macro spark__escape_single_quotes(expression) -%}
    {{- expression | replace("\\", "\\\\") | replace("'", "\\'") -}}
{%- endmacro %}

{#
  dbt-spark's dateadd goes through to_unix_timestamp, which drops the fraction of a second:
  `event > dateadd(minute, 30, previous)` then splits a session whose gap is 29:59.7 (DuckDB
  keeps it whole). timestampadd keeps microseconds, as DuckDB's `+ interval` does.
#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}
