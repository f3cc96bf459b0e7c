//! Answers written straight to JSON bytes.
//!
//! poem-openapi answers a `Json<T>` by building a `serde_json::Value` tree of
//! the whole answer and then serialising it. For the reads that carry pages
//! of runs and validations, that tree (and the parsing of each row's stored
//! metadata and times that fed it) cost more than the query. Those reads
//! write their answer here instead, from the text the store read, with the
//! spec still taken from the `Object` types: [`JsonBytes<T>`] publishes
//! `T`'s schema. Each writer sits next to the type it must match, and a test
//! checks its bytes against that type's own serialisation.

use std::marker::PhantomData;

use poem::{IntoResponse, Response, http::header};

use super::answered_limit;
use crate::domain::Page;
use poem_openapi::{
    ApiResponse,
    payload::{Json, Payload},
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

/// An answer already written as JSON, published with `T`'s schema.
pub struct JsonBytes<T> {
    body: Vec<u8>,
    schema: PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    /// Bytes a writer of this module produced for a `T`.
    pub fn written(body: Vec<u8>) -> Self {
        Self {
            body,
            schema: PhantomData,
        }
    }

    /// The bytes, for tests.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

impl<T: ToJSON> JsonBytes<T> {
    /// `value` serialised the usual way, through its `ToJSON`: for answers
    /// that share a response type with a written read but are not hot.
    pub fn of(value: &T) -> Self {
        let tree = value.to_json().unwrap_or_default();
        // Writing a Value into a Vec cannot fail: its keys are strings.
        Self::written(serde_json::to_vec(&tree).unwrap_or_default())
    }
}

/// What `Json<T>` answers with.
const CONTENT_TYPE: &str = <Json<bool> as Payload>::CONTENT_TYPE;

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> IntoResponse for JsonBytes<T>
where
    T: Send,
{
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .body(self.body)
    }
}

impl<T: Type> ApiResponse for JsonBytes<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Writes one JSON object, field by field, in the order given: the order of
/// the `Object` type's fields, which is how poem-openapi writes them.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object at the end of `out`; [`Obj::close`] ends it.
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    pub fn close(self) {
        self.out.push(b'}');
    }

    /// Field names are our own identifiers: nothing in them needs escaping.
    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        let out = self.key(name);
        string(out, value);
        self
    }

    pub fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(name, v),
            None => self.raw(name, "null"),
        }
    }

    /// A value that is JSON text already (stored metadata, a literal).
    pub fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        self.key(name).extend_from_slice(json.as_bytes());
        self
    }

    pub fn num(&mut self, name: &str, value: impl itoa::Integer) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        let text = digits.format(value);
        self.key(name).extend_from_slice(text.as_bytes());
        self
    }

    pub fn opt_num(&mut self, name: &str, value: Option<impl itoa::Integer>) -> &mut Self {
        match value {
            Some(v) => self.num(name, v),
            None => self.raw(name, "null"),
        }
    }

    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.raw(name, if value { "true" } else { "false" })
    }

    /// A nested object, written by `write`.
    pub fn obj(&mut self, name: &str, write: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let out = self.key(name);
        let mut inner = Obj::open(out);
        write(&mut inner);
        inner.close();
        self
    }

    /// An array of objects, one written by `write` per item.
    pub fn list<I>(
        &mut self,
        name: &str,
        items: I,
        mut write: impl FnMut(&mut Obj<'_>, I::Item),
    ) -> &mut Self
    where
        I: IntoIterator,
    {
        let out = self.key(name);
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut inner = Obj::open(out);
            write(&mut inner, item);
            inner.close();
        }
        out.push(b']');
        self
    }
}

/// `value` as a JSON string, escaped as serde_json escapes it, so written
/// answers are byte for byte what `Json<T>` would send.
fn string(out: &mut Vec<u8>, value: &str) {
    // Serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A page of a list: its items, each written by `item`, then the fields
/// every page type has, in their order (`total`, `limit`, `offset`,
/// `truncated`, `next_cursor`). `size` guesses an item's written bytes.
pub fn page<T>(
    page: &Page<T>,
    (limit, offset): (u32, u64),
    next_cursor: Option<&str>,
    size: impl Fn(&T) -> usize,
    item: impl FnMut(&mut Obj<'_>, &T),
) -> Vec<u8> {
    let capacity = 200 + page.items.iter().map(size).sum::<usize>();
    let answered = answered_limit(limit, page.items.len(), page.truncated);
    object(capacity, |o| {
        o.list("items", &page.items, item)
            .num("total", page.total)
            .num("limit", answered)
            .num("offset", offset)
            .bool("truncated", page.truncated)
            .opt_str("next_cursor", next_cursor);
    })
}

/// Writes one object into a fresh buffer of about `capacity` bytes.
pub fn object(capacity: usize, write: impl FnOnce(&mut Obj<'_>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    let mut o = Obj::open(&mut out);
    write(&mut o);
    o.close();
    out
}
