//! Reading the JSON object of an event's or a state's fields, for the code
//! the macros generate.
//!
//! The reader is generic over the tuple of the fields' types, and takes
//! their names as a list: one pass over the object, each member read
//! straight into its slot. Its code is compiled once per distinct tuple of
//! types (every event with fields `(u64, String)` shares one), instead of a
//! derived `Deserialize` per event, so that an aggregate's events add
//! little to a build.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A tuple of field types that [`read_fields`] can read: implemented for
/// tuples of up to twelve types (the largest with `Default`) that are all
/// `Deserialize`; the macros read more fields with a derived helper.
pub trait Fields: Sized {
    /// One `Option` per field: where each member's value lands.
    type Slots: Default;

    /// Reads the value of the member that is field `index` (or skips it,
    /// for any other index) into `slots`.
    fn read_value<'de, M: MapAccess<'de>>(
        slots: &mut Self::Slots,
        index: usize,
        map: &mut M,
    ) -> Result<(), M::Error>;

    /// The fields, from their slots: a missing member reads as `None` for
    /// an `Option`, and is an error naming it otherwise, as with serde's
    /// derived structs.
    fn finish(slots: Self::Slots, names: &[&'static str]) -> Result<Self, serde_json::Error>;
}

/// Reads the JSON object `data` into the fields named `names`, of the
/// types of `F`: one pass, members in any order, members with other names
/// (such as `"$meta"`) skipped.
pub(crate) fn read_fields<F: Fields>(
    data: &[u8],
    names: &[&'static str],
) -> Result<F, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let slots = deserializer.deserialize_map(FieldsVisitor::<F> {
        names,
        fields: PhantomData,
    })?;
    deserializer.end()?;
    F::finish(slots, names)
}

struct FieldsVisitor<'n, F> {
    names: &'n [&'static str],
    fields: PhantomData<fn() -> F>,
}

impl<'de, F: Fields> Visitor<'de> for FieldsVisitor<'_, F> {
    type Value = F::Slots;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of fields")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<F::Slots, M::Error> {
        let mut slots = F::Slots::default();
        while let Some(index) = map.next_key_seed(KeyIndex { names: self.names })? {
            F::read_value(&mut slots, index, &mut map)?;
        }
        Ok(slots)
    }
}

/// Reads a member's name as the index of the field it names
/// (`usize::MAX` for none), without keeping the name.
///
/// The name is asked for as bytes: the record's data was checked to be
/// UTF-8 as a whole when it was opened, and comparing bytes with the field
/// names spares checking each name again.
struct KeyIndex<'n> {
    names: &'n [&'static str],
}

impl<'de> de::DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl Visitor<'_> for KeyIndex<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<usize, E> {
        Ok(self
            .names
            .iter()
            .position(|name| name.as_bytes() == key)
            .unwrap_or(usize::MAX))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        self.visit_bytes(key.as_bytes())
    }
}

/// What a member that is not there reads as: `None` for an `Option`, an
/// error naming the member for anything else.
struct Missing(&'static str);

impl<'de> Deserializer<'de> for Missing {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::missing_field(self.0))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A field's value, or its missing member's.
fn take<T: DeserializeOwned>(slot: Option<T>, name: &'static str) -> Result<T, serde_json::Error> {
    match slot {
        Some(value) => Ok(value),
        None => T::deserialize(Missing(name)),
    }
}

/// The name of field `index`, for the missing-member error.
fn name(names: &[&'static str], index: usize) -> &'static str {
    names.get(index).copied().unwrap_or("?")
}

macro_rules! tuple_fields {
    ($(($($T:ident $i:tt),*)),* $(,)?) => {$(
        impl<$($T: DeserializeOwned),*> Fields for ($($T,)*) {
            type Slots = ($(Option<$T>,)*);

            #[inline]
            fn read_value<'de, Access: MapAccess<'de>>(
                slots: &mut Self::Slots,
                index: usize,
                map: &mut Access,
            ) -> Result<(), Access::Error> {
                match index {
                    $($i => slots.$i = Some(map.next_value()?),)*
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(())
            }

            #[inline]
            fn finish(slots: Self::Slots, names: &[&'static str]) -> Result<Self, serde_json::Error> {
                Ok(($(take(slots.$i, name(names, $i))?,)*))
            }
        }
    )*};
}

impl Fields for () {
    type Slots = ();

    fn read_value<'de, M: MapAccess<'de>>(
        (): &mut (),
        _: usize,
        map: &mut M,
    ) -> Result<(), M::Error> {
        map.next_value::<IgnoredAny>().map(drop)
    }

    fn finish((): (), _: &[&'static str]) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

tuple_fields!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11),
);

/// The fields of one event being decoded, as the tuple of their types `T`.
/// Generated code calls `(&TupleReader::<T>::NEW).__es_read(data, names)`
/// with [`ReadTuple`] and [`ReadTupleFallback`] in scope: method
/// resolution picks the first when every type is `Deserialize`, else the
/// second, which compiles for any types and never runs (a field's
/// assertion has failed the build).
pub struct TupleReader<T>(PhantomData<fn() -> T>);

impl<T> TupleReader<T> {
    /// The reader (it holds nothing).
    pub const NEW: Self = TupleReader(PhantomData);
}

/// Reads fields whose types are all `Deserialize`.
pub trait ReadTuple {
    /// The tuple of the fields' types.
    type Fields;
    /// Reads the JSON object `data`.
    fn __es_read(
        &self,
        data: &[u8],
        names: &[&'static str],
    ) -> Result<Self::Fields, serde_json::Error>;
}

impl<T: Fields> ReadTuple for TupleReader<T> {
    type Fields = T;
    #[inline]
    fn __es_read(&self, data: &[u8], names: &[&'static str]) -> Result<T, serde_json::Error> {
        read_fields(data, names)
    }
}

/// Chosen when a field's type is not `Deserialize`, a case the field's
/// assertion has already reported as a compile error.
pub trait ReadTupleFallback {
    /// The tuple of the fields' types.
    type Fields;
    /// Never runs: the program does not compile.
    fn __es_read(
        &self,
        data: &[u8],
        names: &[&'static str],
    ) -> Result<Self::Fields, serde_json::Error>;
}

impl<T> ReadTupleFallback for &TupleReader<T> {
    type Fields = T;
    fn __es_read(&self, _: &[u8], _: &[&'static str]) -> Result<T, serde_json::Error> {
        Err(de::Error::custom(
            "field type does not implement `Deserialize`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_by_name_in_any_order_and_others_are_skipped() {
        let data = br#"{"$meta":{"user":"a"},"b":"x\"y","a":[1,2],"c\u0041":3,"z":null}"#;
        let (a, b, c): (Vec<u8>, String, u8) = read_fields(data, &["a", "b", "cA"]).unwrap();
        assert_eq!((a, b.as_str(), c), (vec![1, 2], "x\"y", 3));
    }

    #[test]
    fn a_missing_member_is_none_for_an_option_and_an_error_otherwise() {
        let (a,): (Option<u8>,) = read_fields(b"{}", &["a"]).unwrap();
        assert_eq!(a, None);
        let error = read_fields::<(u8,)>(b"{}", &["a"]).unwrap_err();
        assert!(error.to_string().contains("missing field `a`"), "{error}");
    }

    #[test]
    fn anything_but_one_object_is_an_error() {
        for bad in [
            &b"[1]"[..],
            b"{} {}",
            b"{\"a\":",
            b"",
            b"null",
            b"{\"a\":1,}",
        ] {
            assert!(
                read_fields::<(u8,)>(bad, &["a"]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(read_fields::<(u8,)>(br#"{"a":"text"}"#, &["a"]).is_err());
        assert!(read_fields::<()>(br#"{"a":[1,}"#, &[]).is_err());
        read_fields::<()>(br#"{"a":[1,{"b":2}]}"#, &[]).unwrap();
    }
}
