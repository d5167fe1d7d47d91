{#
  hmac_sha256_hex(key, message) -> VARCHAR: lower-case hex HMAC-SHA256 (RFC 2104) of the
  UTF-8 bytes of `message` under the UTF-8 bytes of `key`; equals Python's
  hmac.new(key, message, hashlib.sha256).hexdigest() (tests/test_pii.py).
    duckdb:   built from sha256() on blobs: the key is hashed when longer than the 64-byte
              block, zero-padded to it, XORed with the 0x36/0x5c pads (as bit strings).
    trino:    hmac_sha256(to_utf8(message), to_utf8(key)).
    spark:    no HMAC function and no XOR on binary: the key block's 64 bytes are XORed one by
              one (hex pairs through conv, integer ^, back to hex) over sequence(0, 63), and
              sha2(binary, 256) does the two hashes.
    others:   not supported yet (a compile error, never an unkeyed fallback).
#}
{% macro hmac_sha256_hex(key, message) -%}
    {{ return(adapter.dispatch('hmac_sha256_hex', 'nightjar')(key, message)) }}
{%- endmacro %}

{% macro default__hmac_sha256_hex(key, message) -%}
    {{ exceptions.raise_compiler_error("hmac_sha256_hex (PII pseudonymisation) is not implemented for the " ~ target.type ~ " adapter yet") }}
{%- endmacro %}

{% macro duckdb__hmac_sha256_hex(key, message) -%}
    {%- set key_bytes = "encode(" ~ key ~ ")" -%}
    {%- set short_key = "(case when octet_length(" ~ key_bytes ~ ") > 64 then unhex(sha256(" ~ key_bytes ~ ")) else " ~ key_bytes ~ " end)" -%}
    {%- set block = "(" ~ short_key ~ " || repeat('\\x00'::blob, 64 - octet_length(" ~ short_key ~ ")))" -%}
    sha256(
        xor({{ block }}::bit, repeat('\x5c'::blob, 64)::bit)::blob
        || unhex(sha256(xor({{ block }}::bit, repeat('\x36'::blob, 64)::bit)::blob || encode({{ message }})))
    )
{%- endmacro %}

{% macro trino__hmac_sha256_hex(key, message) -%}
    lower(to_hex(hmac_sha256(to_utf8({{ message }}), to_utf8({{ key }}))))
{%- endmacro %}

{% macro spark__hmac_sha256_hex(key, message) -%}
    {%- set key = "encode(" ~ key ~ ", 'UTF-8')" -%}
    {%- set short_key = "(case when octet_length(" ~ key ~ ") > 64 then unhex(sha2(" ~ key ~ ", 256)) else " ~ key ~ " end)" -%}
    {%- set block_hex = "rpad(hex(" ~ short_key ~ "), 128, '0')" -%}
    {%- set inner_pad -%}
        unhex(array_join(transform(sequence(0, 63), i -> lpad(hex(cast(conv(substring({{ block_hex }}, 2 * i + 1, 2), 16, 10) as int) ^ 54), 2, '0')), ''))
    {%- endset -%}
    {%- set outer_pad -%}
        unhex(array_join(transform(sequence(0, 63), i -> lpad(hex(cast(conv(substring({{ block_hex }}, 2 * i + 1, 2), 16, 10) as int) ^ 92), 2, '0')), ''))
    {%- endset -%}
    sha2(concat({{ outer_pad }}, unhex(sha2(concat({{ inner_pad }}, encode({{ message }}, 'UTF-8')), 256))), 256)
{%- endmacro %}
