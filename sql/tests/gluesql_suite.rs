//! GlueSQL's own conformance suite (`gluesql-test-suite` 0.20.0, all ten groups, 219 tests)
//! against `SqlStorage`. Every test gets a fresh namespace on the shared backend (see
//! `common`), so the tests run in parallel on one database.

mod common;

use gluesql_core::prelude::Glue;
use gluesql_test_suite::*;
use tinykv_sql::gluesql_core;
use tinykv_sql::SqlStorage;

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
