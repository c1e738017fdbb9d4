-- One row per customer-facing activity done on or before as_of (definitions: int_people__activity_records,
-- the incremental table of every activity).
select * from {{ ref('int_people__activity_records') }}
where activity_date <= {{ as_of() }}
