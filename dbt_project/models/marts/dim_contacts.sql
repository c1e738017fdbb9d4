-- One row per contact of Contact.csv that is not deleted, with its account's and owner's names.
with contacts as (

    select * from {{ ref('stg_crm__contacts') }}
    where not is_deleted

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

users as (

    select * from {{ ref('int_users__enriched') }}

),

final as (

    select
        contacts.contact_id,
        contacts.first_name,
        contacts.last_name,
        contacts.email,
        contacts.title,
        contacts.account_id,
        accounts.account_name,
        contacts.owner_id,
        users.user_name as owner_name,
        cast(contacts.created_at as date) as created_date,
        nullif(trim(concat_ws(' ', contacts.first_name, contacts.last_name)), '') as contact_name
    from contacts
    left join accounts
        on contacts.account_id = accounts.account_id
    left join users
        on contacts.owner_id = users.user_id

)

select * from final
