//! Pretty JSON in serde_json's `to_vec_pretty` layout (two-space indent,
//! `": "`), written at a depth: a value rendered once at the depth it takes
//! in a document can be copied into any document that places it there. A
//! rebuild renders each tool's operation and schemas that way and assembles
//! the documents from those pieces, instead of building one tree of
//! millions of nodes per document and walking it for each rendering.

use std::io::{self, Write};
use std::ops::Range;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};
use serde_json::{Map, Value};

/// `value`, rendered as if it stood `depth` levels deep in a document.
pub fn write_at(out: &mut Vec<u8>, depth: usize, value: &impl Serialize) {
    let mut serializer = Serializer::with_formatter(
        &mut *out,
        Indented {
            current: depth,
            has_value: false,
        },
    );
    // Writing to a `Vec` cannot fail, nor can serializing JSON values
    // (string keys only).
    value.serialize(&mut serializer).unwrap_or_default();
}

/// `value` rendered at `depth`, on its own.
pub fn render_at(depth: usize, value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    write_at(&mut out, depth, value);
    out
}

/// An object written member by member at `depth` (its braces there, its
/// members one level deeper). Members must come in key order, the order a
/// `serde_json::Value` renders them in.
pub struct Object<'o> {
    out: &'o mut Vec<u8>,
    depth: usize,
    empty: bool,
}

impl<'o> Object<'o> {
    pub fn open(out: &'o mut Vec<u8>, depth: usize) -> Object<'o> {
        out.push(b'{');
        Object {
            out,
            depth,
            empty: true,
        }
    }

    fn key(&mut self, key: &str) {
        self.out
            .extend_from_slice(if self.empty { b"\n" } else { b",\n" });
        indent(self.out, self.depth + 1);
        // A string always serializes.
        serde_json::to_writer(&mut *self.out, key).unwrap_or_default();
        self.out.extend_from_slice(b": ");
        self.empty = false;
    }

    /// A member whose value was rendered at this object's depth + 1; where
    /// the value landed in the output.
    pub fn raw(&mut self, key: &str, rendered: &[u8]) -> Range<usize> {
        self.key(key);
        let start = self.out.len();
        self.out.extend_from_slice(rendered);
        start..self.out.len()
    }

    pub fn value(&mut self, key: &str, value: &impl Serialize) {
        self.key(key);
        write_at(self.out, self.depth + 1, value);
    }

    /// A member that is an object written member by member too.
    pub fn object(&mut self, key: &str) -> Object<'_> {
        self.key(key);
        Object::open(self.out, self.depth + 1)
    }

    pub fn close(self) {
        if !self.empty {
            self.out.push(b'\n');
            indent(self.out, self.depth);
        }
        self.out.push(b'}');
    }
}

/// Members of a document made elsewhere, placed into it by [`write_spliced`]:
/// `members[i].1` rendered at the depth the object's members take.
pub struct Splice<'s> {
    /// Where the object is: the keys leading to it from the root.
    pub at: &'s [&'s str],
    /// Its members in key order.
    pub members: &'s [(&'s str, &'s [u8])],
}

/// Writes `skeleton` (an object, at `depth`), where each object a splice
/// names gets the splice's members after its own (which must sort before
/// them: skeletons leave those objects empty). Returns, per splice, where
/// each member's value landed.
pub fn write_spliced(
    out: &mut Vec<u8>,
    depth: usize,
    skeleton: &Map<String, Value>,
    splices: &[Splice<'_>],
) -> Vec<Vec<Range<usize>>> {
    let mut landed = vec![Vec::new(); splices.len()];
    write_object(
        Object::open(out, depth),
        skeleton,
        &mut Vec::new(),
        splices,
        &mut landed,
    );
    landed
}

fn write_object<'k>(
    mut object: Object<'_>,
    members: &'k Map<String, Value>,
    path: &mut Vec<&'k str>,
    splices: &[Splice<'_>],
    landed: &mut [Vec<Range<usize>>],
) {
    for (key, value) in members {
        path.push(key);
        let inside = |splice: &Splice<'_>| {
            splice.at.len() > path.len() && splice.at[..path.len()] == path[..]
        };
        let here = splices.iter().position(|s| s.at == &path[..]);
        match value.as_object() {
            Some(map) if here.is_some() || splices.iter().any(inside) => {
                let mut inner = object.object(key);
                if let Some(index) = here {
                    write_members(&mut inner, map);
                    for (member, rendered) in splices[index].members {
                        landed[index].push(inner.raw(member, rendered));
                    }
                    inner.close();
                } else {
                    write_object(inner, map, path, splices, landed);
                }
            }
            _ => object.value(key, value),
        }
        path.pop();
    }
    object.close();
}

fn write_members(object: &mut Object<'_>, members: &Map<String, Value>) {
    for (key, value) in members {
        object.value(key, value);
    }
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    out.extend(std::iter::repeat_n(b' ', depth * 2));
}

/// serde_json's `PrettyFormatter`, starting `current` levels deep.
struct Indented {
    current: usize,
    has_value: bool,
}

impl Formatter for Indented {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.current += 1;
        self.has_value = false;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.next_line(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.current += 1;
        self.has_value = false;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.end(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.next_line(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

impl Indented {
    fn next_line<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        write_indent(writer, self.current)
    }

    fn end<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.current -= 1;
        if self.has_value {
            writer.write_all(b"\n")?;
            write_indent(writer, self.current)?;
        }
        writer.write_all(bracket)
    }
}

fn write_indent<W: ?Sized + Write>(writer: &mut W, depth: usize) -> io::Result<()> {
    for _ in 0..depth {
        writer.write_all(b"  ")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Value {
        json!({
            "a": [1, { "b": [], "c": {} }, [[]], "x\ny"],
            "d": { "e": { "f": null } },
            "g": {},
            "h": 1.5
        })
    }

    #[test]
    fn a_value_at_depth_zero_is_to_vec_pretty() {
        let value = sample();
        assert_eq!(
            render_at(0, &value),
            serde_json::to_vec_pretty(&value).unwrap()
        );
    }

    #[test]
    fn pieces_rendered_at_their_depth_assemble_into_the_whole() {
        let whole = json!({
            "k": sample(),
            "paths": { "/a": sample(), "/b": [1, 2] },
            "z": { "schemas": { "A": sample() }, "other": true }
        });
        let mut skeleton = whole.clone();
        skeleton["paths"] = json!({});
        skeleton["z"]["schemas"] = json!({});
        let paths = [
            ("/a", render_at(2, &whole["paths"]["/a"])),
            ("/b", render_at(2, &whole["paths"]["/b"])),
        ];
        let schemas = [("A", render_at(3, &whole["z"]["schemas"]["A"]))];
        let paths: Vec<(&str, &[u8])> = paths.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let schemas: Vec<(&str, &[u8])> = schemas.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let mut out = Vec::new();
        let landed = write_spliced(
            &mut out,
            0,
            skeleton.as_object().unwrap(),
            &[
                Splice {
                    at: &["paths"],
                    members: &paths,
                },
                Splice {
                    at: &["z", "schemas"],
                    members: &schemas,
                },
            ],
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            String::from_utf8(serde_json::to_vec_pretty(&whole).unwrap()).unwrap()
        );
        assert_eq!(&out[landed[0][1].clone()], paths[1].1);
        assert_eq!(&out[landed[1][0].clone()], schemas[0].1);
    }

    #[test]
    fn an_empty_splice_leaves_an_empty_object() {
        let skeleton = json!({ "paths": {}, "a": 1 });
        let mut out = Vec::new();
        write_spliced(
            &mut out,
            0,
            skeleton.as_object().unwrap(),
            &[Splice {
                at: &["paths"],
                members: &[],
            }],
        );
        assert_eq!(out, serde_json::to_vec_pretty(&skeleton).unwrap());
    }
}
