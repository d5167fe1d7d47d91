{#
  has_no_rows: fails with one failure per row of the model. For quarantine models, with
  severity warn: the count of quarantined rows shows up as the test's (and the Dagster
  asset check's) failure count.
#}
{% test has_no_rows(model) %}
select * from {{ model }}
{% endtest %}
