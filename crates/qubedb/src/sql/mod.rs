//! QubeDB's SQL layer: parsing, rewrites, the DataFusion glue (catalog and table providers, the scan
//! operator, functions), DDL and DML execution, value conversion and PostgreSQL text formatting.

pub mod analyze;
pub mod apply;
pub mod array_literals;
pub mod checked;
pub mod convert;
pub mod copy;
pub mod ddl;
pub mod dml;
pub mod expand_array;
pub mod fast;
pub mod format;
pub mod functions;
pub mod gin;
pub mod index_keys;
pub mod json_build;
pub mod json_values;
pub mod jsonb;
pub mod jsonb_planner;
pub mod parse;
pub mod plan_cache;
pub mod prepare;
pub mod provider;
pub mod records;
pub mod rewrite;
pub mod row_locks;
pub mod scan_filter;
pub mod scan_order;
pub mod system;
pub mod temp;
pub mod user_types;
pub mod whole_row;
pub mod write;
