with source as (

    select * from {{ source('raw', 'customers') }}

),

latest as (

    select *
    from (
        select
            source.*,
            row_number() over (
                partition by customer_id
                order by updated_at desc, _dlt_load_id desc
            ) as version_rank
        from source
    ) as versions
    where version_rank = 1

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
