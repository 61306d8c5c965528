//! Custom functions (`CREATE FUNCTION`) and table metadata (`GLUE_OBJECTS.CREATED`).
//!
//! Function names are case-insensitive: stored and looked up upper-cased. GlueSQL's
//! `CustomFunction` trait lends references out of `&self`, so the functions of the current
//! snapshot are loaded once into [`SqlStorage::functions`] and dropped whenever the snapshot
//! changes (begin, commit, rollback) or a function is created or dropped.

use std::collections::BTreeMap;

use gluesql_core::data::CustomFunction as Function;
use gluesql_core::error::Result;
use gluesql_core::prelude::Value;
use gluesql_core::store::{CustomFunction, CustomFunctionMut, MetaIter, Metadata};

use super::SqlStorage;
use crate::errors::Error;

impl SqlStorage {
    fn loaded_functions(&self) -> Result<&BTreeMap<String, Function>> {
        if let Some(functions) = self.functions.get() {
            return Ok(functions);
        }
        let loaded = self.read(|ctx| {
            let (start, end) = ctx.keys().functions();
            let mut functions = BTreeMap::new();
            ctx.for_each(&start, &end, |_, key, bytes| {
                let f: Function = bincode::deserialize(&bytes)
                    .map_err(|e| Error::corrupted("custom function", &key, e))?;
                functions.insert(f.func_name.to_uppercase(), f);
                Ok(())
            })?;
            Ok(functions)
        })?;
        Ok(self.functions.get_or_init(|| loaded))
    }
}

impl CustomFunction for SqlStorage {
    fn fetch_function<'a>(&'a self, func_name: &str) -> Result<Option<&'a Function>> {
        Ok(self.loaded_functions()?.get(&func_name.to_uppercase()))
    }

    fn fetch_all_functions(&self) -> Result<Vec<&Function>> {
        Ok(self.loaded_functions()?.values().collect())
    }
}

impl CustomFunctionMut for SqlStorage {
    fn insert_function(&mut self, func: Function) -> Result<()> {
        self.functions = Default::default();
        Ok(self.write(|ctx| {
            let key = ctx.keys().function(&func.func_name.to_uppercase());
            let bytes = bincode::serialize(&func)
                .map_err(|e| Error::corrupted("custom function", &key, e))?;
            ctx.put(key, bytes)
        })?)
    }

    fn delete_function(&mut self, func_name: &str) -> Result<()> {
        self.functions = Default::default();
        Ok(self.write(|ctx| {
            let key = ctx.keys().function(&func_name.to_uppercase());
            ctx.delete(key)
        })?)
    }
}

impl Metadata for SqlStorage {
    fn scan_table_meta(&self) -> Result<MetaIter> {
        let tables = self.read(|ctx| ctx.all_tables())?;
        let metas: Vec<_> = tables
            .iter()
            .map(|t| {
                let meta = BTreeMap::from([("CREATED".to_owned(), Value::Timestamp(t.created))]);
                Ok((t.name().to_owned(), meta))
            })
            .collect();
        Ok(Box::new(metas.into_iter()))
    }
}
