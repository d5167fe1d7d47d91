with source as (

    select * from {{ source('raw', 'products') }}

),

latest as (

{{ nightjar.latest_version('source', 'product_id', 'updated_at desc, _dlt_load_id desc') }}

),

renamed as (

    select
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(name as {{ dbt.type_string() }}) as product_name,
        cast(category as {{ dbt.type_string() }}) as category,
        cast(price as {{ nightjar.type_double() }}) as price,
        {{ nightjar.to_utc_timestamp('updated_at') }} as updated_at
    from latest

)

select * from renamed
