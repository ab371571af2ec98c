//! Route (read/write classification): an exhaustive visit of a SELECT's parse
//! tree looking for anything that makes it a write.
//!
//! pg_query's parse tree has a few hundred node types, and its own `nodes()`
//! iterator skips many of them (locking clauses, window definitions, …). A
//! hand-written walker would have the same problem: any forgotten node type
//! is a function call or a writable CTE we would not see. The protobuf types
//! derive `serde::Serialize`, though, and a serializer is shown every field of
//! every node. So this module "serializes" the tree into nothing, inspecting
//! struct names and `FuncCall.funcname` on the way, and stops at the first
//! sign of a write (the serializer error is the early exit).

use std::fmt;

use serde::ser::{self, Serialize, Serializer};

use super::functions::FunctionPolicy;

/// Whether `node` (a `SelectStmt` or anything below one) is free of locking
/// clauses, `SELECT … INTO`, data-modifying statements (writable CTEs) and
/// calls to functions the policy does not allow.
pub(super) fn is_read<T: Serialize + ?Sized>(node: &T, policy: &FunctionPolicy) -> bool {
    let mut walker = Walker {
        policy,
        names: None,
    };
    node.serialize(&mut walker).is_ok()
}

/// Node types that make a SELECT a write wherever they appear in its tree.
fn is_write_node(type_name: &str) -> bool {
    match type_name {
        // FOR UPDATE / SHARE / NO KEY UPDATE / KEY SHARE, and SELECT … INTO.
        "LockingClause" | "IntoClause" => true,
        "SelectStmt" => false,
        // INSERT/UPDATE/DELETE/MERGE in a CTE; any other statement type is
        // unexpected inside a query and taken as a write.
        other => other.ends_with("Stmt"),
    }
}

/// The "error" that stops the walk: the tree contains a write.
#[derive(Debug, thiserror::Error)]
#[error("statement is not a read")]
pub(super) struct NotRead;

impl ser::Error for NotRead {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotRead
    }
}

struct Walker<'p> {
    policy: &'p FunctionPolicy,
    /// While visiting `FuncCall.funcname`: the name parts seen so far.
    names: Option<Vec<String>>,
}

impl Walker<'_> {
    /// Visits a `FuncCall.funcname` list (a list of `String` nodes) and asks
    /// the policy about the collected name.
    fn check_function_name<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotRead> {
        let outer = self.names.replace(Vec::new());
        let visited = value.serialize(&mut *self);
        let parts = std::mem::replace(&mut self.names, outer).unwrap_or_default();
        visited?;
        if self.policy.allows(&parts) {
            Ok(())
        } else {
            Err(NotRead)
        }
    }
}

/// Fields of one struct (or struct variant), remembering its type name so
/// `FuncCall.funcname` can be recognised.
struct Fields<'a, 'p> {
    walker: &'a mut Walker<'p>,
    type_name: &'static str,
}

impl Fields<'_, '_> {
    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotRead> {
        if self.type_name == "FuncCall" && key == "funcname" {
            self.walker.check_function_name(value)
        } else {
            value.serialize(&mut *self.walker)
        }
    }
}

impl ser::SerializeStruct for Fields<'_, '_> {
    type Ok = ();
    type Error = NotRead;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotRead> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), NotRead> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Fields<'_, '_> {
    type Ok = ();
    type Error = NotRead;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotRead> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), NotRead> {
        Ok(())
    }
}

/// Sequences, tuples and maps: visit every element.
macro_rules! visit_elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for &mut Walker<'_> {
            type Ok = ();
            type Error = NotRead;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotRead> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), NotRead> {
                Ok(())
            }
        }
    )*};
}

visit_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut Walker<'_> {
    type Ok = ();
    type Error = NotRead;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NotRead> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotRead> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), NotRead> {
        Ok(())
    }
}

/// Scalars carry nothing of interest, except strings inside a function name.
macro_rules! ignore_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, _value: $ty) -> Result<(), NotRead> {
            Ok(())
        }
    )*};
}

impl<'a, 'p> Serializer for &'a mut Walker<'p> {
    type Ok = ();
    type Error = NotRead;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Fields<'a, 'p>;
    type SerializeStructVariant = Fields<'a, 'p>;

    ignore_scalars!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_bytes: &[u8],
    );

    fn serialize_str(self, value: &str) -> Result<(), NotRead> {
        if let Some(names) = &mut self.names {
            names.push(value.to_owned());
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<(), NotRead> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotRead> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NotRead> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), NotRead> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), NotRead> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotRead> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotRead> {
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, NotRead> {
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, NotRead> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _len: usize) -> Result<Self, NotRead> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, NotRead> {
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, NotRead> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Fields<'a, 'p>, NotRead> {
        self.enter(name)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Fields<'a, 'p>, NotRead> {
        self.enter(variant)
    }
}

impl<'p> Walker<'p> {
    fn enter(&mut self, type_name: &'static str) -> Result<Fields<'_, 'p>, NotRead> {
        if is_write_node(type_name) {
            return Err(NotRead);
        }
        Ok(Fields {
            walker: self,
            type_name,
        })
    }
}
