//! GlueSQL's own conformance suite (`gluesql-test-suite` 0.20.0, all ten groups, 219 tests)
//! against `SqlStorage`. Every test gets a fresh namespace (named after the test) on the shared
//! backend (see `common`), so the tests run in parallel on one database: by default a real
//! 3-store cluster split along [`SPLIT_PLAN`].

mod common;

use gluesql_core::prelude::Glue;
use gluesql_test_suite::*;
use tinykv_sql::gluesql_core;
use tinykv_sql::SqlStorage;

/// Region boundaries of this binary's cluster. Namespaces are the suite's test names: the
/// starts below spread the 219 tests over 12 regions of similar size; the tables listed
/// (primary keys, foreign keys, joins, UNIQUE checks, indexes, explicit transactions, ALTER
/// TABLE) have their index entries, rows (cut at the primary keys given), guards and second
/// table in different regions, so their statements are multi-region Percolator transactions.
const SPLIT_PLAN: common::SplitPlan = common::SplitPlan {
    namespace_starts: &[
        "query_builder_function_t",
        "sql_aggregate",
        "sql_data_type",
        "sql_expr",
        "sql_function_a",
        "sql_function_g",
        "sql_function_p",
        "sql_i",
        "sql_n",
        "sql_t",
        "store",
    ],
    tables: &[
        ("sql_primary_key", &[3]),
        ("sql_delete", &[2]),
        ("sql_foreign_key", &[]),
        ("sql_validate_unique", &[]),
        ("sql_join", &[]),
        ("sql_update", &[]),
        ("sql_index_basic", &[]),
        ("sql_transaction_basic", &[]),
        ("sql_transaction_index_create", &[]),
        ("sql_alter_alter_table_add_drop", &[]),
    ],
};

struct KvTester {
    glue: Glue<SqlStorage>,
}

impl Tester<SqlStorage> for KvTester {
    fn new(namespace: &str) -> Self {
        KvTester {
            glue: Glue::new(common::storage(namespace)),
        }
    }

    fn get_glue(&mut self) -> &mut Glue<SqlStorage> {
        &mut self.glue
    }
}

generate_store_tests!(test, KvTester);
generate_index_tests!(test, KvTester);
generate_transaction_tests!(test, KvTester);
generate_alter_table_tests!(test, KvTester);
generate_alter_table_index_tests!(test, KvTester);
generate_transaction_alter_table_tests!(test, KvTester);
generate_transaction_index_tests!(test, KvTester);
generate_metadata_table_tests!(test, KvTester);
generate_metadata_index_tests!(test, KvTester);
generate_custom_function_tests!(test, KvTester);
