{#
    The night's User export, kept as a history: a new version of a user whenever their manager (team),
    role, division (region) or department (segment) differs from the version in force. The build copy of
    every night starts as a byte copy of the last published warehouse, so the versions of earlier nights
    are there to compare with; dbt's --full-refresh never rebuilds a snapshot. No wall clock: a version's
    dbt_valid_from is the as-of date of the run that first saw it (updated_at), so a re-run or a backfill
    records the same dates.
#}
{% snapshot snp_crm__users %}

    {{ config(
        schema='snapshots',
        unique_key='user_id',
        strategy='check',
        check_cols=['manager_id', 'user_role_id', 'division', 'department'],
        updated_at='recorded_as_of',
    ) }}

    select
        user_id,
        manager_id,
        user_role_id,
        division,
        department,
        cast({{ as_of() }} as timestamp) as recorded_as_of
    from {{ ref('stg_crm__users') }}
    where user_id is not null

{% endsnapshot %}
