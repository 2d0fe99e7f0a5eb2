{#- Fails where a comma list has empty items, spaces around commas or duplicates. -#}
{% test is_comma_list(model, column_name) %}
select *
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} <> ''
  and (
    {{ column_name }} ~ '(^,|,,|,$|\s,|,\s)'
    or (select count(*) from unnest(string_to_array({{ column_name }}, ','))) <>
       (select count(distinct item) from unnest(string_to_array({{ column_name }}, ',')) as item)
  )
{% endtest %}
