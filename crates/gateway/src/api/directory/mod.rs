//! The directory in the commerce platform's wire format: account authentication
//! settings, password profiles, users (user authentication info) and their
//! credentials (user authentication password profile info). Admin client tokens
//! only, but for a member's own password reset.
//!
//! # Layout
//!
//! - [`settings`], [`profiles`], [`users`], [`credentials`]: one resource each, its
//!   wire types and its endpoints.
//! - This module: what they share: the records' timestamps, links and list
//!   paging, [`admin_in`] (the check every realm path starts with), [`known`]
//!   (how the ids in paths and bodies are parsed) and [`Wire`] (a record wrapped
//!   for the answer).

pub mod credentials;
pub mod profiles;
pub mod settings;
pub mod users;

use std::str::FromStr;

use authgate_core::directory::{Directory, DirectoryError};
use authgate_core::ids::{IdError, RealmId};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;

use super::types::{Envelope, ListEnvelope, PageLimit, Timestamp};
use super::{admin, BearerToken};
use crate::errors::ApiError;
use crate::state::AppState;

/// Declares the single-value enums that name each resource's `type`.
macro_rules! resource_types {
    ($($(#[$doc:meta])* $name:ident :: $variant:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, poem_openapi::Enum, PartialEq, Eq)]
            #[oai(rename_all = "snake_case")]
            pub enum $name {
                /// The only value.
                $variant,
            }
        )*
    };
}

pub(crate) use resource_types;

/// Timestamps of a resource.
#[derive(Debug, Object)]
pub struct Meta {
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

impl Meta {
    fn of(created_at: String, updated_at: String) -> Self {
        Self {
            created_at: Timestamp(created_at),
            updated_at: Timestamp(updated_at),
        }
    }
}

/// Links of a resource.
#[derive(Debug, Object)]
pub struct Links {
    /// The resource itself.
    #[oai(rename = "self")]
    pub self_: String,
}

/// Paging of a list.
#[derive(Debug, Object)]
pub struct PageMeta {
    /// Items per page.
    pub limit: u32,
    /// Items skipped.
    pub offset: u32,
    /// This page's number, from 1.
    pub current: u32,
    /// How many pages there are.
    pub total: u32,
}

/// Counts of a list.
#[derive(Debug, Object)]
pub struct ResultsMeta {
    /// How many items there are in all.
    pub total: u32,
}

/// Metadata of a list.
#[derive(Debug, Object)]
pub struct ListMeta {
    /// Paging.
    pub page: PageMeta,
    /// Counts.
    pub results: ResultsMeta,
}

/// The page of `items` that `limit` (at least 1) and `offset` select, and its
/// metadata.
fn page<T>(items: Vec<T>, limit: u32, offset: Option<u32>) -> (Vec<T>, ListMeta) {
    let offset = offset.unwrap_or(0);
    let total = items.len() as u32;
    let data: Vec<T> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    let meta = ListMeta {
        page: PageMeta {
            limit,
            offset,
            current: offset / limit + 1,
            total: total.div_ceil(limit).max(1),
        },
        results: ResultsMeta { total },
    };
    (data, meta)
}

/// A directory record and its wire form.
pub trait Record {
    /// The wire form.
    type Data;
    /// The wire form, with its link under `/v2/authentication-realms/{realm}`.
    fn data(self, realm: &RealmId) -> Self::Data;
}

/// Records wrapped for an answer.
pub trait Wire {
    /// One record, `{"data": ...}`.
    fn one<E: Envelope>(&self, record: impl Record<Data = E::Data>) -> Json<E>;

    /// The page of `records` that `limit` and `offset` select, `{"data": [...], "meta": ...}`.
    fn page<L, R>(&self, records: Vec<R>, limit: PageLimit, offset: Option<u32>) -> Json<L>
    where
        L: ListEnvelope<Meta = ListMeta>,
        R: Record<Data = L::Item>;
}

impl Wire for Directory {
    fn one<E: Envelope>(&self, record: impl Record<Data = E::Data>) -> Json<E> {
        Json(E::wrap(record.data(self.realm_id())))
    }

    fn page<L, R>(&self, records: Vec<R>, limit: PageLimit, offset: Option<u32>) -> Json<L>
    where
        L: ListEnvelope<Meta = ListMeta>,
        R: Record<Data = L::Item>,
    {
        let (records, meta) = page(records, limit.get(), offset);
        let data = records
            .into_iter()
            .map(|r| r.data(self.realm_id()))
            .collect();
        Json(L::wrap(data, meta))
    }
}

/// The directory for an admin client whose path names the directory's realm:
/// 401 or 403 for the client, then 404 for another realm.
pub async fn admin_in<'a>(
    state: &'a AppState,
    auth: &BearerToken,
    realm: &str,
) -> Result<&'a Directory, ApiError> {
    admin(state, auth).await?;
    state.directory.check_realm(&known(realm)?)?;
    Ok(&state.directory)
}

/// The id in a directory path or body, parsed once, here at the edge. One that
/// does not parse names no record, so it is refused with the 404 an unknown
/// one gets from the lookup (`password profile not found`), never a 400.
pub fn known<T: FromStr<Err = IdError>>(raw: &str) -> Result<T, DirectoryError> {
    Ok(raw.parse()?)
}

/// A field a create needs, or 400.
fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::bad(format!("data.{field} is required")))
}

/// A nullable field of an update: `None` to keep it, `Some(None)` to clear it.
fn change<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_numbered_from_one_and_a_list_has_at_least_one_page() {
        let (items, meta) = page((1..=30).collect(), 25, None);
        assert_eq!(items, (1..=25).collect::<Vec<_>>());
        let p = meta.page;
        assert_eq!((p.limit, p.offset, p.current, p.total), (25, 0, 1, 2));
        assert_eq!(meta.results.total, 30);

        let (items, meta) = page((1..=30).collect(), 10, Some(25));
        assert_eq!(items, (26..=30).collect::<Vec<_>>());
        let p = meta.page;
        assert_eq!((p.limit, p.offset, p.current, p.total), (10, 25, 3, 3));

        let (items, meta) = page(Vec::<u32>::new(), 25, Some(50));
        assert!(items.is_empty());
        assert_eq!((meta.page.current, meta.page.total), (3, 1));
    }
}
