with source as (

    select * from {{ source('raw', 'customers') }}

),

latest as (

{{ nightjar.latest_version('source', 'customer_id', 'updated_at desc, _dlt_load_id desc') }}

),

renamed as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        -- PII: only the hash leaves staging; the address itself is not selected.
        {{ nightjar.hash_email('email') }} as email_hash,
        upper(trim(country)) as country,
        {{ nightjar.to_utc_timestamp('created_at') }} as created_at,
        {{ nightjar.to_utc_timestamp('updated_at') }} as updated_at
    from latest

)

select * from renamed
