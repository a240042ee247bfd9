//! The journal on PostgreSQL (see `crate::journal`): a batch appended in
//! one transaction, one statement per tenant under its scope, all or
//! nothing; a book read tenant by tenant under row-level security, or one
//! session of it as its tenant.

use sqlx::Row;

use super::{PgStore, scope, u32_of};
use crate::StoreError;
use crate::journal::JournalEntry;
use crate::ticket::TenantId;

pub(super) async fn append(store: &PgStore, entries: &[JournalEntry]) -> Result<usize, StoreError> {
    for e in entries {
        crate::journal::check(e)?;
    }
    let mut tx = store.pool.begin().await?;
    let mut written = 0;
    // One statement per tenant, each under that tenant's scope.
    let mut tenants: Vec<&TenantId> = entries.iter().map(|e| &e.tenant).collect();
    tenants.sort_by_key(|t| t.as_str());
    tenants.dedup();
    for tenant in tenants {
        let mine: Vec<&JournalEntry> = entries.iter().filter(|e| &e.tenant == tenant).collect();
        let seqs = mine
            .iter()
            .map(|e| i32::try_from(e.seq))
            .collect::<Result<Vec<i32>, _>>()
            .map_err(|e| StoreError::Invalid(format!("journal entry seq: {e}")))?;
        scope(&mut tx, tenant).await?;
        let done = sqlx::query(
            "INSERT INTO desk_journal (tenant_id, book, session, seq, kind, body, at_ms) \
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[]) \
             ON CONFLICT (session, seq) DO NOTHING",
        )
        .bind(tenant.uuid())
        .bind(mine.iter().map(|e| e.book.as_str()).collect::<Vec<_>>())
        .bind(mine.iter().map(|e| e.session.as_str()).collect::<Vec<_>>())
        .bind(seqs)
        .bind(mine.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(mine.iter().map(|e| e.body.as_str()).collect::<Vec<_>>())
        .bind(mine.iter().map(|e| e.at_ms).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        written += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    if written != entries.len() {
        tx.rollback().await?;
        return Ok(0);
    }
    tx.commit().await?;
    Ok(written)
}

pub(super) async fn read(
    store: &PgStore,
    book: &str,
    only: Option<&TenantId>,
) -> Result<Vec<JournalEntry>, StoreError> {
    let tenants = store.tenants_to_read(only).await?;
    let mut tx = store.read_tx().await?;
    let mut out = Vec::new();
    for tenant in &tenants {
        scope(&mut tx, tenant).await?;
        for row in sqlx::query(
            "SELECT session, seq, kind, body, at_ms FROM desk_journal WHERE book = $1 ORDER BY session, seq",
        )
        .bind(book)
        .fetch_all(&mut *tx)
        .await?
        {
            out.push(JournalEntry {
                book: book.to_owned(),
                session: row.try_get("session")?,
                seq: u32_of(row.try_get("seq")?),
                tenant: tenant.clone(),
                kind: row.try_get("kind")?,
                body: row.try_get("body")?,
                at_ms: row.try_get("at_ms")?,
            });
        }
    }
    tx.commit().await?;
    out.sort_by(|a, b| (&a.session, a.seq).cmp(&(&b.session, b.seq)));
    Ok(out)
}

pub(super) async fn read_session(
    store: &PgStore,
    book: &str,
    session: &str,
    tenant: &TenantId,
) -> Result<Vec<JournalEntry>, StoreError> {
    let mut tx = store.read_tx().await?;
    scope(&mut tx, tenant).await?;
    let rows = sqlx::query(
        "SELECT seq, kind, body, at_ms FROM desk_journal WHERE book = $1 AND session = $2 ORDER BY seq",
    )
    .bind(book)
    .bind(session)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| {
            Ok(JournalEntry {
                book: book.to_owned(),
                session: session.to_owned(),
                seq: u32_of(row.try_get("seq")?),
                tenant: tenant.clone(),
                kind: row.try_get("kind")?,
                body: row.try_get("body")?,
                at_ms: row.try_get("at_ms")?,
            })
        })
        .collect()
}
