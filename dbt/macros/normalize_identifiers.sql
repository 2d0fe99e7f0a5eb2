{#- Identifier normalisation: the definition the loaders' Python port (dagster_project/privacy/normalize.py)
    is tested equal to (tests/privacy/test_normalize_macros.py). Since field encryption, the loaders
    normalise and tokenise emails and phones before they land, so the models no longer call these macros
    (they only ever see tokens); a change here must be made there too, and the test says so.

    Email: trimmed, lower-cased; " at " / "(at)" / "[at]" become "@", repeated "@" collapse to one; a
    leading "mailto:", angle brackets and whitespace removed; empty strings become null. Two repairs for
    well-known providers only (var email_known_providers): a missing "@" before the provider's domain
    ("annagmail.com") and a missing top-level domain ("anna@gmail"). No other provider-specific rewriting
    (gmail dots, "+tags"): that could merge different mailboxes.

    Phone: to E.164 when possible. Everything but digits and a leading "+" is dropped; "00" becomes "+";
    a national number of 10 digits gets the default calling code (var identity_default_phone_country_code);
    11 digits starting with that code get a "+". Anything else that is not 8..15 digits after "+" is not a
    usable phone number (null). -#}

{% macro normalize_email(column) -%}
    {%- set providers = var('email_known_providers') -%}
    {%- set provider_pattern = providers | map('replace', '.', '\\.') | join('|') -%}
    {%- set cleaned -%}
        regexp_replace(
            regexp_replace(
                regexp_replace(lower(trim({{ column }})), '\s*(\(at\)|\[at\]|\sat\s)\s*', '@', 'g'),
                '^mailto:|^<|>$|\s', '', 'g'
            ),
            '@{2,}', '@', 'g'
        )
    {%- endset -%}
    nullif(
        case
            {# "name.gmail.com" / "namegmail.com": the @ went missing before a well-known provider #}
            when position('@' in {{ cleaned }}) = 0 and {{ cleaned }} ~ '.\.?({{ provider_pattern }})$'
                then regexp_replace({{ cleaned }}, '\.?({{ provider_pattern }})$', '@\1')
            {%- for provider in providers %}
            {# "name@gmail": a well-known provider without its top-level domain #}
            when {{ cleaned }} like '%@{{ provider.split('.')[0] }}' then {{ cleaned }} || '.{{ provider.split('.', 1)[1] }}'
            {%- endfor %}
            else {{ cleaned }}
        end,
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
