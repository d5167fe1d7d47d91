{# Shop orders kept out of stg_orders and every order / revenue metric (DESIGN §6 "Bad shop
   rows"): one row per bad order (its latest version) with the first failing check as
   `reason` and all of them in `reasons`. The shop's row is untouched: once it is fixed
   there, the next load moves the order back into stg_orders. #}

with source as (

    select * from {{ source('raw', 'orders') }}

),

latest as (

{{ nightjar.latest_version('source', 'order_id', 'updated_at desc, _dlt_load_id desc') }}

),

orders as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        {{ nightjar.pseudonymise_identifier('cast(customer_id as ' ~ dbt.type_string() ~ ')') }} as customer_id,
        lower(trim(status)) as status,
        upper(trim(currency)) as currency,
        cast(total_amount as {{ nightjar.type_double() }}) as total_amount,
        {{ nightjar.to_utc_timestamp('created_at') }} as created_at,
        {{ nightjar.to_utc_timestamp('updated_at') }} as updated_at
    from latest

),

checked as (

    select
        orders.*,
        rates.currency is null as is_unknown_currency,
        orders.total_amount < 0 as is_negative_amount,
        orders.total_amount is null as is_missing_amount,
        customers.customer_id is null as is_unknown_customer,
        coalesce(orders.status not in (
            {%- for s in var('order_statuses') %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor -%}
        ), true) as is_unknown_status
    from orders
    left join {{ ref('currency_rates') }} as rates
        on orders.currency = rates.currency
    left join {{ ref('stg_customers') }} as customers
        on orders.customer_id = customers.customer_id

)

select
    order_id,
    customer_id,
    status,
    currency,
    total_amount,
    created_at,
    updated_at,
    case
        when is_unknown_currency then 'unknown_currency'
        when is_negative_amount then 'negative_amount'
        when is_missing_amount then 'missing_amount'
        when is_unknown_customer then 'unknown_customer'
        else 'unknown_status'
    end as reason,
    concat_ws(',',
        case when is_unknown_currency then 'unknown_currency' end,
        case when is_negative_amount then 'negative_amount' end,
        case when is_missing_amount then 'missing_amount' end,
        case when is_unknown_customer then 'unknown_customer' end,
        case when is_unknown_status then 'unknown_status' end
    ) as reasons
from checked
where is_unknown_currency or is_negative_amount or is_missing_amount or is_unknown_customer or is_unknown_status
