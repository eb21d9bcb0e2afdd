//! JSON made of borrowed parts: a document that shares most of its content
//! with another (a service's document with the platform's, the API Gateway
//! flavour's operations with their shared answers) is serialized from
//! references instead of a copied tree. Serialized, a part gives the bytes
//! the equivalent `Value` gives: members in key order, as in a `Value`
//! without serde_json's `preserve_order`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

pub enum Part<'a> {
    Value(&'a Value),
    Owned(Value),
    Text(String),
    Array(Vec<Part<'a>>),
    Object(Members<'a>),
}

/// An object's members, kept in key order.
#[derive(Default)]
pub struct Members<'a>(BTreeMap<Cow<'a, str>, Part<'a>>);

impl<'a> Members<'a> {
    pub fn new() -> Members<'a> {
        Members::default()
    }

    /// Every member of `map`, borrowed: the base that `insert` and `remove`
    /// change.
    pub fn borrowing(map: &'a Map<String, Value>) -> Members<'a> {
        Members(
            map.iter()
                .map(|(key, value)| (Cow::Borrowed(key.as_str()), Part::Value(value)))
                .collect(),
        )
    }

    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, part: Part<'a>) {
        self.0.insert(key.into(), part);
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }
}

impl<'a> From<Members<'a>> for Part<'a> {
    fn from(members: Members<'a>) -> Part<'a> {
        Part::Object(members)
    }
}

impl Serialize for Part<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Part::Value(value) => value.serialize(serializer),
            Part::Owned(value) => value.serialize(serializer),
            Part::Text(text) => serializer.serialize_str(text),
            Part::Array(items) => serializer.collect_seq(items),
            Part::Object(members) => serializer.collect_map(&members.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parts_serialize_as_the_tree_they_stand_for() {
        let base = json!({ "b": [1, { "y": null, "x": "é\n" }], "d": {}, "a": true, "c": [] });
        let mut members = Members::borrowing(base.as_object().unwrap());
        members.remove("a");
        members.insert("c", Part::Array(vec![Part::Text("t".into())]));
        members.insert("aa", Part::Object(Members::new()));
        members.insert("e", Part::Owned(json!({ "z": 1.5, "k": [] })));
        let part = Part::from(members);
        let tree = json!({
            "b": [1, { "y": null, "x": "é\n" }],
            "d": {},
            "c": ["t"],
            "aa": {},
            "e": { "z": 1.5, "k": [] }
        });
        assert_eq!(
            serde_json::to_vec_pretty(&part).unwrap(),
            serde_json::to_vec_pretty(&tree).unwrap()
        );
        assert_eq!(
            serde_json::to_vec(&part).unwrap(),
            serde_json::to_vec(&tree).unwrap()
        );
        assert_eq!(serde_json::to_value(&part).unwrap(), tree);
    }
}
