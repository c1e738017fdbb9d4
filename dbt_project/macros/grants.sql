{#
    Read-only access for BI tools, on the postgres target (a no-op on DuckDB, which has no roles).

    grant_bi_read_only() creates the role var('bi_role') (default salesos_bi) as NOLOGIN when it is
    missing, and grants it USAGE on the schemas BI reads (marts, and forecasts and semantic when they
    exist: the semantic layer's time spine and manifest, which `salesos metrics` queries beside the marts)
    and SELECT on every table and view in them. Nothing is granted on raw, quarantine, staging, intermediate or any
    other schema. Give people access with a login role that is a member:
        create role alice login password '...' in role salesos_bi;

    dbt replaces a mart table on every run (a new table swapped in), which drops the grants of the old
    one, so this runs after every run (on-run-end in dbt_project.yml). Default privileges also make the
    tables the dbt user creates in those schemas readable as soon as they are swapped in.

    By hand (role: override the var for one call):
        dbt run-operation grant_bi_read_only --target postgres
        dbt run-operation grant_bi_read_only --target postgres --args '{role: salesos_bi_test}'
#}
{% macro grant_bi_read_only(role=none) -%}
    {%- if not execute or target.type != 'postgres' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set role = (role or var('bi_role', 'salesos_bi')) | string | trim -%}
    {%- if not role -%}
        {{ exceptions.raise_compiler_error("var bi_role must be a role name") }}
    {%- endif -%}
    {%- set bi_schemas = ['marts', 'forecasts', 'semantic'] -%}
    {%- set existing = run_query(
        "select schema_name from information_schema.schemata where schema_name in ('"
        ~ bi_schemas | join("', '") ~ "')"
    ).columns[0].values() -%}
    {%- set quoted = adapter.quote(role) -%}
    {%- set grants -%}
        do $grant_bi$
        begin
            if not exists (select from pg_catalog.pg_roles where rolname = {{ salesos.sql_string(role) }}) then
                create role {{ quoted }} nologin;
            end if;
        end
        $grant_bi$;
        {%- for schema in bi_schemas if schema in existing %}
        grant usage on schema {{ adapter.quote(schema) }} to {{ quoted }};
        grant select on all tables in schema {{ adapter.quote(schema) }} to {{ quoted }};
        alter default privileges in schema {{ adapter.quote(schema) }} grant select on tables to {{ quoted }};
        {%- endfor %}
    {%- endset -%}
    {%- do run_query(grants) -%}
    {%- do log("granted read-only access on " ~ (existing | join(', ') or 'no schema') ~ " to role " ~ role, info=true) -%}
    {{ return('') }}
{%- endmacro %}
