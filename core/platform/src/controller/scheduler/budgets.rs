//! The tenants' books: each known tenant's budget, what it has spent,
//! whether it is paused, and the tickets parked because its budget ran
//! out or it is paused.
//!
//! It owns the budget decisions: whether a tenant may take new work
//! ([`Budgets::admit`]), whether its queued work may be routed, and which
//! parked tickets a new budget lets go ([`Budgets::hold`]). It must never
//! write a budget or read the store: a budget is held here only once it is
//! durable, and the caller says when that is. Start at [`Budgets::admit`].

use std::collections::{HashMap, HashSet};

use crate::clock::UnixMs;
use crate::cost::usd;
use crate::store::Tenant;
use crate::ticket::{TenantId, TicketId};

#[derive(Debug)]
struct TenantBook {
    budget_nusd: Option<i64>,
    spent_nusd: i64,
    created_at_ms: UnixMs,
}

impl TenantBook {
    /// A stored tenant's book, nothing spent yet.
    fn of(t: &Tenant) -> Self {
        TenantBook {
            budget_nusd: t.budget_nusd,
            spent_nusd: 0,
            created_at_ms: t.created_at_ms,
        }
    }

    fn exhausted(&self) -> bool {
        spent_all(self.budget_nusd, self.spent_nusd)
    }

    fn exhaustion(&self) -> Exhaustion {
        Exhaustion {
            spent_usd: usd(self.spent_nusd),
            budget_usd: usd(self.budget_nusd.unwrap_or(0)),
        }
    }
}

/// One tenant's budget and what it has spent, as the scheduler holds them
/// (the figures its admissions decide by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub tenant: TenantId,
    /// `None`: no limit.
    pub budget_nusd: Option<i64>,
    pub spent_nusd: i64,
    /// Paused: its tickets are admitted and kept, not routed.
    pub paused: bool,
}

impl Spend {
    /// Whether its new tickets are refused.
    pub fn exhausted(&self) -> bool {
        spent_all(self.budget_nusd, self.spent_nusd)
    }
}

/// Whether `spent` has reached `budget` (never, without one).
fn spent_all(budget: Option<i64>, spent: i64) -> bool {
    budget.is_some_and(|b| spent >= b)
}

/// A spent budget, as surfaces are told of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Exhaustion {
    pub(super) spent_usd: f64,
    pub(super) budget_usd: f64,
}

/// Whether a tenant may take new work.
#[derive(Debug, PartialEq)]
pub(super) enum Standing {
    Open,
    /// Unknown until now and created on first use: its row goes into the
    /// admitting commit.
    Created(Tenant),
    /// Unknown, and tenants are not created on first use.
    Unknown,
    Exhausted(Exhaustion),
}

#[derive(Debug)]
pub(super) struct Budgets {
    books: HashMap<TenantId, TenantBook>,
    /// Queued tickets taken out of their queue because their tenant's
    /// budget is spent, until it is raised.
    parked: HashMap<TenantId, Vec<TicketId>>,
    /// Tenants an operator or a heal paused: their tickets are admitted
    /// and parked, not routed, until resumed.
    paused: HashSet<TenantId>,
    auto_create: bool,
    default_budget_nusd: Option<i64>,
}

impl Budgets {
    /// The books of the stored tenants with what each has spent; a tenant
    /// unknown at admission is created with `default_budget_nusd` when
    /// `auto_create`, refused otherwise.
    pub(super) fn new(
        stored: Vec<Tenant>,
        spent: Vec<(TenantId, i64)>,
        auto_create: bool,
        default_budget_nusd: Option<i64>,
    ) -> Self {
        let mut books: HashMap<TenantId, TenantBook> = stored
            .into_iter()
            .map(|t| (t.id.clone(), TenantBook::of(&t)))
            .collect();
        for (tenant, spent) in spent {
            if let Some(book) = books.get_mut(&tenant) {
                book.spent_nusd = spent;
            }
        }
        Self {
            books,
            parked: HashMap::new(),
            paused: HashSet::new(),
            auto_create,
            default_budget_nusd,
        }
    }

    /// Whether `tenant` may take new work now; a tenant created here is
    /// held at once, and [`Self::forget`] undoes that if its row is refused.
    pub(super) fn admit(&mut self, tenant: &TenantId, now: UnixMs) -> Standing {
        match self.books.get(tenant) {
            None if !self.auto_create => Standing::Unknown,
            None => {
                let book = TenantBook {
                    budget_nusd: self.default_budget_nusd,
                    spent_nusd: 0,
                    created_at_ms: now,
                };
                let row = Tenant {
                    id: tenant.clone(),
                    budget_nusd: book.budget_nusd,
                    created_at_ms: now,
                };
                self.books.insert(tenant.clone(), book);
                Standing::Created(row)
            }
            Some(book) if book.exhausted() => Standing::Exhausted(book.exhaustion()),
            Some(_) => Standing::Open,
        }
    }

    /// Drops a tenant created at admission whose commit was refused.
    pub(super) fn forget(&mut self, tenant: &TenantId) {
        self.books.remove(tenant);
    }

    /// Takes on a stored tenant not held yet (its book starts at nothing spent).
    pub(super) fn know(&mut self, row: &Tenant) {
        self.books
            .entry(row.id.clone())
            .or_insert_with(|| TenantBook::of(row));
    }

    /// Whether `tenant`'s queued work may not be routed now: its budget
    /// is spent or it is paused.
    pub(super) fn held_back(&self, tenant: &TenantId) -> bool {
        self.paused.contains(tenant) || self.exhausted(tenant)
    }

    pub(super) fn paused(&self, tenant: &TenantId) -> bool {
        self.paused.contains(tenant)
    }

    /// Pauses or resumes `tenant` (its change is durable); whether that
    /// changed anything, and the parked tickets a resume lets go (none
    /// while its budget is spent).
    pub(super) fn set_paused(&mut self, tenant: &TenantId, paused: bool) -> (bool, Vec<TicketId>) {
        let changed = if paused {
            self.paused.insert(tenant.clone())
        } else {
            self.paused.remove(tenant)
        };
        let freed = if changed && !paused && !self.exhausted(tenant) {
            self.parked.remove(tenant).unwrap_or_default()
        } else {
            Vec::new()
        };
        (changed, freed)
    }

    pub(super) fn exhausted(&self, tenant: &TenantId) -> bool {
        self.books.get(tenant).is_some_and(TenantBook::exhausted)
    }

    /// How far over its budget `tenant` is, if it is.
    pub(super) fn exhaustion(&self, tenant: &TenantId) -> Option<Exhaustion> {
        self.books
            .get(tenant)
            .filter(|b| b.exhausted())
            .map(TenantBook::exhaustion)
    }

    /// Every tenant's budget and spend, in no set order.
    pub(super) fn spend(&self) -> Vec<Spend> {
        self.books
            .iter()
            .map(|(tenant, b)| Spend {
                tenant: tenant.clone(),
                budget_nusd: b.budget_nusd,
                spent_nusd: b.spent_nusd,
                paused: self.paused.contains(tenant),
            })
            .collect()
    }

    pub(super) fn created_at(&self, tenant: &TenantId) -> Option<UnixMs> {
        self.books.get(tenant).map(|b| b.created_at_ms)
    }

    /// Adds an attempt's cost to what `tenant` spent (nothing for a tenant
    /// not held: the ledger row still records it).
    pub(super) fn charge(&mut self, tenant: &TenantId, cost_nusd: i64) {
        if let Some(book) = self.books.get_mut(tenant) {
            book.spent_nusd += cost_nusd;
        }
    }

    /// Sets a queued ticket aside until its tenant's budget has room and
    /// it is not paused.
    pub(super) fn park(&mut self, tenant: TenantId, ticket: TicketId) {
        self.parked.entry(tenant).or_default().push(ticket);
    }

    /// Takes on `row`'s budget (now durable); the tickets parked on the
    /// tenant come back, to be queued again, if it now has room.
    #[must_use = "the tickets let go must be queued again"]
    pub(super) fn hold(&mut self, row: &Tenant) -> Vec<TicketId> {
        let book = self
            .books
            .entry(row.id.clone())
            .or_insert_with(|| TenantBook::of(row));
        book.budget_nusd = row.budget_nusd;
        if book.exhausted() || self.paused.contains(&row.id) {
            return Vec::new();
        }
        self.parked.remove(&row.id).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn row(name: &str, budget_nusd: Option<i64>) -> Tenant {
        Tenant {
            id: tenant(name),
            budget_nusd,
            created_at_ms: 7,
        }
    }

    #[test]
    fn stored_tenants_start_with_what_they_spent() {
        let b = Budgets::new(
            vec![row("acme", Some(100)), row("free", None)],
            vec![
                (tenant("acme"), 100),
                (tenant("free"), 5),
                (tenant("gone"), 1),
            ],
            false,
            None,
        );
        assert!(b.exhausted(&tenant("acme")));
        assert!(!b.exhausted(&tenant("free")), "no budget, no limit");
        assert!(
            !b.exhausted(&tenant("gone")),
            "spend of an unknown tenant is ignored"
        );
        assert_eq!(b.created_at(&tenant("acme")), Some(7));
        assert_eq!(b.created_at(&tenant("gone")), None);
        assert_eq!(
            b.exhaustion(&tenant("acme")),
            Some(Exhaustion {
                spent_usd: usd(100),
                budget_usd: usd(100)
            })
        );
        assert_eq!(b.exhaustion(&tenant("free")), None);
    }

    #[test]
    fn admission_refuses_an_unknown_tenant_unless_tenants_are_created_on_first_use() {
        let mut closed = Budgets::new(vec![], vec![], false, Some(50));
        assert_eq!(closed.admit(&tenant("new"), 10), Standing::Unknown);
        assert_eq!(closed.admit(&tenant("new"), 10), Standing::Unknown);

        let mut open = Budgets::new(vec![], vec![], true, Some(50));
        assert_eq!(
            open.admit(&tenant("new"), 10),
            Standing::Created(Tenant {
                id: tenant("new"),
                budget_nusd: Some(50),
                created_at_ms: 10
            })
        );
        assert_eq!(
            open.admit(&tenant("new"), 11),
            Standing::Open,
            "held at once"
        );
        open.forget(&tenant("new"));
        assert!(matches!(
            open.admit(&tenant("new"), 12),
            Standing::Created(_)
        ));
    }

    #[test]
    fn a_tenant_is_refused_once_it_spent_its_budget() {
        let mut b = Budgets::new(vec![row("acme", Some(100))], vec![], false, None);
        b.charge(&tenant("acme"), 99);
        assert_eq!(b.admit(&tenant("acme"), 0), Standing::Open);
        b.charge(&tenant("acme"), 1);
        assert_eq!(
            b.admit(&tenant("acme"), 0),
            Standing::Exhausted(Exhaustion {
                spent_usd: usd(100),
                budget_usd: usd(100)
            })
        );
        b.charge(&tenant("nobody"), 1_000);
        assert!(!b.exhausted(&tenant("nobody")));
    }

    #[test]
    fn parked_work_comes_back_only_when_the_budget_has_room() {
        let mut b = Budgets::new(vec![row("acme", Some(100))], vec![], false, None);
        b.charge(&tenant("acme"), 150);
        let (t1, t2) = (TicketId::new(), TicketId::new());
        b.park(tenant("acme"), t1);
        b.park(tenant("acme"), t2);
        assert_eq!(b.hold(&row("acme", Some(120))), vec![], "still spent");
        assert_eq!(b.hold(&row("acme", Some(200))), vec![t1, t2]);
        assert_eq!(b.hold(&row("acme", None)), vec![], "let go once");
        assert!(!b.exhausted(&tenant("acme")));
    }

    #[test]
    fn paused_work_comes_back_once_resumed_and_within_its_budget() {
        let mut b = Budgets::new(vec![row("acme", Some(100))], vec![], false, None);
        let acme = tenant("acme");
        assert_eq!(b.set_paused(&acme, true), (true, vec![]));
        assert_eq!(b.set_paused(&acme, true), (false, vec![]), "once");
        assert!(b.held_back(&acme) && !b.exhausted(&acme));
        assert_eq!(b.admit(&acme, 0), Standing::Open, "admitted, kept");
        let t1 = TicketId::new();
        b.park(acme.clone(), t1);
        assert_eq!(
            b.hold(&row("acme", Some(500))),
            vec![],
            "a raise does not resume"
        );
        b.charge(&acme, 600);
        assert_eq!(
            b.set_paused(&acme, false),
            (true, vec![]),
            "resumed, but spent"
        );
        assert!(b.held_back(&acme));
        assert_eq!(b.hold(&row("acme", Some(1_000))), vec![t1]);
        assert!(b.spend().iter().all(|s| !s.paused));
    }

    #[test]
    fn a_budget_held_for_a_tenant_not_known_yet_opens_its_book() {
        let mut b = Budgets::new(vec![], vec![], false, None);
        assert!(b.hold(&row("late", Some(0))).is_empty());
        assert!(
            b.exhausted(&tenant("late")),
            "a zero budget is spent at once"
        );
        assert_eq!(b.created_at(&tenant("late")), Some(7));
        b.know(&row("late", None));
        assert!(b.exhausted(&tenant("late")), "know keeps a book it holds");
        b.know(&row("other", Some(0)));
        assert!(b.exhausted(&tenant("other")));
    }
}
