-- One row per line item (OpportunityLineItem; HubSpot's line items) of a live opportunity: not deleted, on a
-- deal in fct_opportunities. The line amount in the reporting currency at the deal's rate; the deal's status,
-- close date, owner and segment carried so product numbers roll up like the deal's.
with line_items as (

    select * from {{ ref('stg_crm__opportunity_line_items') }}
    where not is_deleted

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

opportunities as (

    select * from {{ ref('fct_opportunities') }}

),

final as (

    select
        line_items.line_item_id,
        line_items.opportunity_id,
        line_items.product_id,
        products.product_name,
        products.product_code,
        products.product_family,
        line_items.quantity,
        line_items.unit_price as unit_price_local,
        line_items.total_price as total_price_local,
        opportunities.currency_iso_code,
        cast(line_items.total_price * opportunities.fx_rate as {{ numeric_type() }}) as amount,
        opportunities.status,
        opportunities.is_closed,
        opportunities.is_won,
        opportunities.close_date,
        opportunities.close_fiscal_month,
        opportunities.owner_id,
        opportunities.region,
        opportunities.segment,
        line_items.created_at
    from line_items
    inner join opportunities
        on line_items.opportunity_id = opportunities.opportunity_id
    left join products
        on line_items.product_id = products.product_id

)

select * from final
