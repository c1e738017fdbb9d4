-- One row per user, with role, manager (team) and region resolved from the settings.
with {{ import_ctes(users='stg_crm__users', roles='stg_crm__user_roles') }},

enriched as (

    select
        users.user_id,
        users.user_name,
        users.email,
        users.department,
        users.division,
        users.user_role_id,
        roles.user_role_name,
        users.manager_id,
        managers.user_name as manager_name,
        users.manager_id as team_id,
        coalesce(managers.user_name, users.manager_id, {{ no_team_name() }}) as team_name,
        {{ region_for('users.division', 'roles.user_role_name') }} as region,
        coalesce(users.is_active, false) as is_active,
        cast(users.created_at as date) as hire_date
    from users
    left join roles
        on users.user_role_id = roles.user_role_id
    left join users as managers
        on users.manager_id = managers.user_id

)

select * from enriched
