{#- Identifier normalisation, shared by every staging model that carries an email or a phone.

    Email: trimmed, lower-cased, a leading "mailto:" and surrounding angle brackets removed, inner
    whitespace removed; empty strings become null. No provider-specific rewriting (gmail dots, "+tags")
    because that would merge different mailboxes on other providers.

    Phone: to E.164 when possible. Everything but digits and a leading "+" is dropped; "00" becomes "+";
    a national number of 10 digits gets the default calling code (var identity_default_phone_country_code);
    11 digits starting with that code get a "+". Anything else that is not 8..15 digits after "+" is not a
    usable phone number (null). -#}

{% macro normalize_email(column) -%}
    nullif(
        regexp_replace(
            regexp_replace(lower(trim({{ column }})), '^mailto:|^<|>$', '', 'g'),
            '\s', '', 'g'
        ),
        ''
    )
{%- endmacro %}


{% macro phone_e164(column) -%}
    {%- set cc = var('identity_default_phone_country_code') -%}
    {%- set digits = "regexp_replace(coalesce(" ~ column ~ ", ''), '[^0-9]', '', 'g')" -%}
    {%- set plus = "(ltrim(coalesce(" ~ column ~ ", '')) like '+%')" -%}
    case
        when {{ plus }} and length({{ digits }}) between 8 and 15 then '+' || {{ digits }}
        when {{ digits }} like '00%' and length({{ digits }}) between 10 and 17 then '+' || substr({{ digits }}, 3)
        when length({{ digits }}) = 10 then '+{{ cc }}' || {{ digits }}
        when length({{ digits }}) = 10 + {{ cc | length }} and {{ digits }} like '{{ cc }}%' then '+' || {{ digits }}
    end
{%- endmacro %}

{% macro is_valid_email(column) -%}
    coalesce({{ column }} ~ '^[a-z0-9._%+''-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$', false)
{%- endmacro %}
