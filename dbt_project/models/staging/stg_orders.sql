{# Shop orders, one row per order_id (latest version), in USD. Bad orders (unknown currency,
   negative or missing total, unknown customer or status) are left out: they are listed in
   stg_orders_rejected with their reason. #}

with source as (

    select * from {{ source('raw', 'orders') }}

),

latest as (

{{ nightjar.latest_version('source', 'order_id', 'updated_at desc, _dlt_load_id desc') }}

),

rates as (

    select * from {{ ref('currency_rates') }}

),

renamed as (

    select
        cast(latest.order_id as {{ dbt.type_string() }}) as order_id,
        -- PII: an e-mail-shaped customer_id becomes its keyed HMAC, as in stg_customers
        {{ nightjar.pseudonymise_identifier('cast(latest.customer_id as ' ~ dbt.type_string() ~ ')') }} as customer_id,
        lower(trim(latest.status)) as status,
        upper(trim(latest.currency)) as currency,
        cast(latest.total_amount as {{ nightjar.type_double() }}) as total_amount,
        cast(latest.total_amount as {{ nightjar.type_double() }}) * rates.usd_per_unit as total_amount_usd,
        {{ nightjar.to_utc_timestamp('latest.created_at') }} as created_at,
        {{ nightjar.to_utc_timestamp('latest.updated_at') }} as updated_at
    from latest
    inner join rates
        on upper(trim(latest.currency)) = rates.currency
    where not exists (
        select 1 from {{ ref('stg_orders_rejected') }} as rejected
        where rejected.order_id = cast(latest.order_id as {{ dbt.type_string() }})
    )

)

select
    order_id,
    customer_id,
    status,
    currency,
    total_amount,
    total_amount_usd,
    created_at,
    updated_at,
    cast(created_at as date) as order_date,
    status = 'cancelled' as is_cancelled,
    status = 'refunded' as is_refunded
from renamed
