with source as (

    select * from {{ source('raw', 'customers') }}

),

latest as (

{{ nightjar.latest_version('source', 'customer_id', 'updated_at desc, _dlt_load_id desc') }}

),

renamed as (

    select
        -- PII: an e-mail-shaped id becomes its keyed HMAC, as user_id does in stg_events
        {{ nightjar.pseudonymise_identifier('cast(customer_id as ' ~ dbt.type_string() ~ ')') }} as customer_id,
        -- PII: only the keyed hash leaves staging; the address itself is not selected.
        {{ nightjar.hash_email('email') }} as email_hash,
        upper(trim(country)) as country,
        {{ nightjar.to_utc_timestamp('created_at') }} as created_at,
        {{ nightjar.to_utc_timestamp('updated_at') }} as updated_at
    from latest

)

select * from renamed
