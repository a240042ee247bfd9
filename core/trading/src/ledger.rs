//! A double-entry ledger of one account's quote currency: every movement
//! is a transaction of postings, each a debit and a credit of the same
//! amount, so debits equal credits at every instant.
//!
//! Risk approval reserves an order's notional (cash → reserved); each fill
//! releases its share of the reservation and pays for the trade (cash ↔
//! positions) and its commission (cash → fees); a cancel or expiry releases
//! what is left. A transaction is checked whole before any of it is posted:
//! a refused one leaves the ledger as it was.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::order::OrderSide;

/// The ledger's accounts. A balance is debits minus credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// What the owner put in (credit balance).
    Capital,
    /// Free cash.
    Cash,
    /// Cash set aside for open orders.
    Reserved,
    /// What open positions were traded for.
    Positions,
    Fees,
    /// Gains and losses realized by closing positions (credit balance for
    /// a gain): once flat, `Positions` holds nothing.
    RealizedPnl,
}

/// Why a posting was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Deposit,
    Reserve,
    Release,
    Trade,
    Commission,
    Realize,
}

/// One debit and one credit of the same amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub debit: Account,
    pub credit: Account,
    /// Raw billionths, above zero.
    pub amount: i128,
    pub reason: Reason,
    /// The order it is for (empty for a deposit).
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {amount} is not above zero")]
    NotPositive { field: &'static str, amount: i128 },
    #[error("{field}: {amount} is negative")]
    Negative { field: &'static str, amount: i128 },
    #[error("order {order}: reserving {amount} exceeds the free cash {free}")]
    InsufficientCash {
        order: String,
        amount: i128,
        free: i128,
    },
    #[error("order {order}: it already holds a reservation")]
    AlreadyReserved { order: String },
    #[error("order {order}: it holds no reservation")]
    NoReservation { order: String },
}

/// The ledger: its postings, balances and open reservations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub postings: Vec<Posting>,
    balances: BTreeMap<Account, i128>,
    reservations: BTreeMap<String, i128>,
}

impl Ledger {
    pub fn balance(&self, account: Account) -> i128 {
        self.balances.get(&account).copied().unwrap_or(0)
    }

    /// What an order still holds in reserve.
    pub fn reserved_for(&self, order: &str) -> i128 {
        self.reservations.get(order).copied().unwrap_or(0)
    }

    /// Σ debits − Σ credits over every account: zero, always.
    pub fn imbalance(&self) -> i128 {
        self.balances.values().sum()
    }

    fn post(&mut self, postings: Vec<Posting>) {
        for p in postings {
            *self.balances.entry(p.debit).or_default() += p.amount;
            *self.balances.entry(p.credit).or_default() -= p.amount;
            self.postings.push(p);
        }
    }

    fn posting(
        debit: Account,
        credit: Account,
        amount: i128,
        reason: Reason,
        order: &str,
    ) -> Posting {
        Posting {
            debit,
            credit,
            amount,
            reason,
            order: order.to_owned(),
        }
    }

    pub fn deposit(&mut self, amount: i128) -> Result<(), LedgerError> {
        positive("amount", amount)?;
        self.post(vec![Self::posting(
            Account::Cash,
            Account::Capital,
            amount,
            Reason::Deposit,
            "",
        )]);
        Ok(())
    }

    /// Sets `amount` aside for `order` (when risk approves it).
    pub fn reserve(&mut self, order: &str, amount: i128) -> Result<(), LedgerError> {
        positive("amount", amount)?;
        if self.reservations.contains_key(order) {
            return Err(LedgerError::AlreadyReserved {
                order: order.to_owned(),
            });
        }
        let free = self.balance(Account::Cash);
        if amount > free {
            return Err(LedgerError::InsufficientCash {
                order: order.to_owned(),
                amount,
                free,
            });
        }
        self.post(vec![Self::posting(
            Account::Reserved,
            Account::Cash,
            amount,
            Reason::Reserve,
            order,
        )]);
        self.reservations.insert(order.to_owned(), amount);
        Ok(())
    }

    /// Settles one fill of `order`: releases as much of its reservation as
    /// the trade's value (no more than is left), pays for the trade and its
    /// commission.
    pub fn fill(
        &mut self,
        order: &str,
        side: OrderSide,
        value: i128,
        commission: i128,
    ) -> Result<(), LedgerError> {
        positive("value", value)?;
        if commission < 0 {
            return Err(LedgerError::Negative {
                field: "commission",
                amount: commission,
            });
        }
        let held = *self
            .reservations
            .get(order)
            .ok_or_else(|| LedgerError::NoReservation {
                order: order.to_owned(),
            })?;
        let release = held.min(value);
        let mut postings = Vec::new();
        if release > 0 {
            postings.push(Self::posting(
                Account::Cash,
                Account::Reserved,
                release,
                Reason::Release,
                order,
            ));
        }
        postings.push(match side {
            OrderSide::Buy => Self::posting(
                Account::Positions,
                Account::Cash,
                value,
                Reason::Trade,
                order,
            ),
            OrderSide::Sell => Self::posting(
                Account::Cash,
                Account::Positions,
                value,
                Reason::Trade,
                order,
            ),
        });
        if commission > 0 {
            postings.push(Self::posting(
                Account::Fees,
                Account::Cash,
                commission,
                Reason::Commission,
                order,
            ));
        }
        self.post(postings);
        self.reservations.insert(order.to_owned(), held - release);
        Ok(())
    }

    /// Moves what a fill of `order` realized (before fees) from the
    /// positions' cost to realized P&L: a gain credits it, a loss debits it.
    pub fn realize(&mut self, order: &str, pnl: i128) {
        if pnl == 0 {
            return;
        }
        let (debit, credit) = if pnl > 0 {
            (Account::Positions, Account::RealizedPnl)
        } else {
            (Account::RealizedPnl, Account::Positions)
        };
        self.post(vec![Self::posting(
            debit,
            credit,
            pnl.abs(),
            Reason::Realize,
            order,
        )]);
    }

    /// Releases what `order` still holds (canceled, expired, or filled for
    /// less than was reserved).
    pub fn release(&mut self, order: &str) -> Result<i128, LedgerError> {
        let held = self
            .reservations
            .remove(order)
            .ok_or_else(|| LedgerError::NoReservation {
                order: order.to_owned(),
            })?;
        if held > 0 {
            self.post(vec![Self::posting(
                Account::Cash,
                Account::Reserved,
                held,
                Reason::Release,
                order,
            )]);
        }
        Ok(held)
    }
}

fn positive(field: &'static str, amount: i128) -> Result<(), LedgerError> {
    if amount <= 0 {
        return Err(LedgerError::NotPositive { field, amount });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_reservation_is_settled_by_fills_and_released_by_a_cancel() {
        let mut l = Ledger::default();
        l.deposit(10_000).unwrap();
        l.reserve("O-1", 5_000).unwrap();
        assert_eq!(
            (l.balance(Account::Cash), l.balance(Account::Reserved)),
            (5_000, 5_000)
        );
        l.fill("O-1", OrderSide::Buy, 2_000, 3).unwrap();
        assert_eq!(l.reserved_for("O-1"), 3_000);
        assert_eq!(l.balance(Account::Positions), 2_000);
        assert_eq!(l.balance(Account::Fees), 3);
        assert_eq!(l.release("O-1").unwrap(), 3_000);
        assert_eq!(l.balance(Account::Reserved), 0);
        assert_eq!(l.balance(Account::Cash), 10_000 - 2_000 - 3);
        assert_eq!(l.imbalance(), 0);
    }

    #[test]
    fn a_refused_transaction_posts_nothing() {
        let mut l = Ledger::default();
        l.deposit(1_000).unwrap();
        let before = l.clone();
        assert!(matches!(
            l.reserve("O-1", 1_001),
            Err(LedgerError::InsufficientCash { free: 1_000, .. })
        ));
        assert!(matches!(
            l.reserve("O-1", 0),
            Err(LedgerError::NotPositive { .. })
        ));
        assert!(matches!(
            l.fill("O-9", OrderSide::Buy, 10, 0),
            Err(LedgerError::NoReservation { .. })
        ));
        assert!(matches!(
            l.release("O-9"),
            Err(LedgerError::NoReservation { .. })
        ));
        assert_eq!(l, before);
        l.reserve("O-1", 500).unwrap();
        assert!(matches!(
            l.reserve("O-1", 100),
            Err(LedgerError::AlreadyReserved { .. })
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(u8, i128),
        Fill(u8, bool, i128, i128),
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..5, 1i128..5_000).prop_map(|(o, a)| Op::Reserve(o, a)),
            (0u8..5, any::<bool>(), 1i128..3_000, 0i128..50)
                .prop_map(|(o, b, v, c)| Op::Fill(o, b, v, c)),
            (0u8..5).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// After any sequence of reservations, fills and releases, refused
        /// or not: debits equal credits, and the reserved account holds
        /// exactly what the open reservations add up to.
        #[test]
        fn the_ledger_balances_after_anything(ops in prop::collection::vec(op(), 0..60)) {
            let mut l = Ledger::default();
            l.deposit(20_000).unwrap();
            for op in ops {
                let before = l.clone();
                let result = match op {
                    Op::Reserve(o, a) => l.reserve(&format!("O-{o}"), a),
                    Op::Fill(o, buy, v, c) => {
                        let side = if buy { OrderSide::Buy } else { OrderSide::Sell };
                        l.fill(&format!("O-{o}"), side, v, c)
                    }
                    Op::Release(o) => l.release(&format!("O-{o}")).map(|_| ()),
                };
                if result.is_err() {
                    prop_assert_eq!(&l, &before);
                }
                prop_assert_eq!(l.imbalance(), 0);
                let held: i128 = l.reservations.values().sum();
                prop_assert_eq!(l.balance(Account::Reserved), held);
                prop_assert!(l.reservations.values().all(|h| *h >= 0));
            }
        }
    }
}
