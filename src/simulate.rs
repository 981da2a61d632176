//! `ledger simulate`: a marketplace through the real command pipeline, deterministic for a
//! seed. Orders follow scripts drawn by weight (most delivered and closed; revisions accepted
//! and refused; extras, deadline extensions, partial refunds; disputes of every outcome;
//! every kind of cancellation; reviews), interleaved on a simulated clock, with the timers
//! firing as deadlines pass. Ids and instants come from the seed; only event ids and recorded
//! instants, which the store assigns, differ between two runs. Several simulations with seeds
//! derived from one can run side by side (`simulate_concurrently`): the workload of the
//! benchmarks, deterministic per simulation but not in how they interleave.

use crate::timers::fire_due_timers_in_order;
use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_commands::{CommandError, CommandHandler, CommandRequest, Outcome};
use ledger_domain::*;
use ledger_projections::{Fact, TimerView, Views};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// What a simulation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulationReport {
    pub orders: u64,
    pub commands: u64,
    /// Commands the rules refused; a script that meets a refusal skips to its next step.
    pub refused: u64,
    pub timers_fired: u64,
    /// Timer commands that failed for a reason of their order's: never, in a sound ledger
    /// (a timer acts only on an order its rule applies to); each is tried again later.
    pub timers_refused: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Confirm,
    Decline,
    BuyerCancel,
    Extra,
    Extend,
    PartialRefund,
    Deliver,
    RequestRevision,
    AcceptRevision,
    RefuseRevision,
    Close,
    /// Do nothing until the order's timer has fired.
    AwaitTimer,
    Dispute,
    Resolve(u8),
    RequestCancellation,
    AgreeCancellation,
    SellerCancel,
    /// Wait past the deadline, then cancel as the buyer.
    LateCancel,
    Review,
}

/// The scripts and their weights: most orders end delivered and closed.
fn script(roll: u32) -> Vec<Step> {
    use Step::*;
    match roll {
        0..=39 => vec![Confirm, Deliver, Close, Review],
        40..=49 => vec![Confirm, Extra, Deliver, AwaitTimer, Review],
        50..=57 => vec![
            Confirm,
            Deliver,
            RequestRevision,
            AcceptRevision,
            Deliver,
            Close,
            Review,
        ],
        58..=61 => vec![Confirm, Deliver, RequestRevision, RefuseRevision, Close],
        62..=65 => vec![
            Confirm,
            Deliver,
            RequestRevision,
            RefuseRevision,
            AwaitTimer,
        ],
        66..=69 => vec![Confirm, PartialRefund, Deliver, Close, Review],
        70..=72 => vec![Confirm, Extend, Deliver, Close],
        73..=74 => vec![Confirm, Deliver, Dispute, Resolve(0), Review],
        75..=76 => vec![Confirm, Deliver, Dispute, Resolve(1)],
        77..=78 => vec![
            Confirm,
            Deliver,
            RequestRevision,
            RefuseRevision,
            Dispute,
            Resolve(2),
        ],
        79..=82 => vec![Decline],
        83..=85 => vec![AwaitTimer],
        86..=88 => vec![BuyerCancel],
        89..=91 => vec![Confirm, SellerCancel],
        92..=94 => vec![Confirm, LateCancel],
        _ => vec![Confirm, RequestCancellation, AgreeCancellation],
    }
}

struct Simulated {
    id: OrderId,
    buyer: Actor,
    seller: Actor,
    steps: Vec<Step>,
    next: usize,
}

/// A live order's delivery deadline and escrow held, as its last outcome left them.
struct Known {
    due: Option<DateTime<Utc>>,
    held: Option<Money>,
}

pub struct Simulation {
    handler: Arc<CommandHandler>,
    rng: fastrand::Rng,
    clock: DateTime<Utc>,
    /// This simulation's own orders, folded from its commands' outcomes into the timers'
    /// view alone; unstored, so that no change is tracked per key.
    timers: TimerView,
    /// What the scripts read of each live order, as its last outcome's state left it: folding
    /// a view for it (the orders' for the deadline, escrow's for the amount held) was 2-3% of
    /// `bench commands`' samples each.
    known: HashMap<OrderId, Known, foldhash::fast::RandomState>,
    report: SimulationReport,
}

/// Runs `orders` orders split over `concurrency` simulations whose seeds derive from `seed`.
pub async fn simulate_concurrently(
    handler: Arc<CommandHandler>,
    orders: u64,
    seed: u64,
    concurrency: u64,
    on_order_done: impl Fn(u64) + Send + Sync + 'static,
) -> Result<SimulationReport, CommandError> {
    let concurrency = concurrency.clamp(1, orders.max(1));
    let on_order_done = Arc::new(on_order_done);
    let mut runs = tokio::task::JoinSet::new();
    for k in 0..concurrency {
        let share = orders / concurrency + u64::from(k < orders % concurrency);
        let seed = seed.wrapping_mul(1_000_003).wrapping_add(k);
        let simulation = Simulation::new(handler.clone(), seed);
        let done = on_order_done.clone();
        runs.spawn(async move { simulation.run(share, move |n| done(n)).await });
    }
    let mut total = SimulationReport::default();
    while let Some(run) = runs.join_next().await {
        let report = run.map_err(|e| {
            CommandError::Store(ledger_store::StoreError::Io(format!(
                "a simulation failed: {e}"
            )))
        })??;
        total.orders += report.orders;
        total.commands += report.commands;
        total.refused += report.refused;
        total.timers_fired += report.timers_fired;
        total.timers_refused += report.timers_refused;
    }
    Ok(total)
}

impl Simulation {
    pub fn new(handler: Arc<CommandHandler>, seed: u64) -> Self {
        Simulation {
            handler,
            rng: fastrand::Rng::with_seed(seed),
            clock: Utc
                .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
                .single()
                .unwrap_or_default(),
            timers: Views::unstored().timers,
            known: HashMap::default(),
            report: SimulationReport::default(),
        }
    }

    /// Runs `orders` orders to their end, calling `on_order_done` as each finishes.
    pub async fn run(
        mut self,
        orders: u64,
        mut on_order_done: impl FnMut(u64),
    ) -> Result<SimulationReport, CommandError> {
        let buyers = orders / 3 + 1;
        let sellers = orders / 5 + 1;
        let mut live: Vec<Simulated> = Vec::new();
        // Earliest next action first; the sequence number keeps ties deterministic.
        let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, u64, usize)>> = BinaryHeap::new();
        let mut sequence = 0;
        let mut next_placement = self.clock;
        while self.report.orders < orders || !queue.is_empty() {
            // Whatever happens first on the simulated clock: a new order or a queued step.
            let earliest_step = queue.peek().map(|Reverse((at, _, _))| *at);
            let place_now =
                self.report.orders < orders && earliest_step.is_none_or(|at| next_placement <= at);
            if place_now {
                self.clock = self.clock.max(next_placement);
                next_placement = self.clock + Duration::minutes(self.rng.i64(1..=20));
                let order = Simulated {
                    id: self.order_id(),
                    buyer: Actor::new(
                        Role::Buyer,
                        UserId(Uuid::from_u128(
                            1_000_000 + u128::from(self.rng.u64(..buyers)),
                        )),
                    ),
                    seller: Actor::new(
                        Role::Seller,
                        UserId(Uuid::from_u128(
                            2_000_000 + u128::from(self.rng.u64(..sellers)),
                        )),
                    ),
                    steps: script(self.rng.u32(..100)),
                    next: 0,
                };
                self.place(&order).await?;
                self.report.orders += 1;
                live.push(order);
                let at = self.clock + self.gap();
                queue.push(Reverse((at, sequence, live.len() - 1)));
                sequence += 1;
                continue;
            }
            let Some(Reverse((at, _, index))) = queue.pop() else {
                break;
            };
            self.clock = self.clock.max(at);
            self.fire_timers().await?;
            let step = live[index].steps[live[index].next];
            self.act(&live[index], step).await?;
            live[index].next += 1;
            if live[index].next < live[index].steps.len() {
                let at = self.clock + self.wait(&live[index], live[index].steps[live[index].next]);
                queue.push(Reverse((at, sequence, index)));
                sequence += 1;
            } else {
                self.known.remove(&live[index].id);
                on_order_done(1);
            }
        }
        self.clock += Duration::days(30);
        self.fire_timers().await?;
        Ok(self.report)
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(self.rng.u128(..))
    }

    /// A time-ordered id, as the service makes one for a client that names none, but on the
    /// simulated clock so that a seed still gives the same log.
    fn order_id(&mut self) -> OrderId {
        let millis = u64::try_from(self.clock.timestamp_millis()).unwrap_or_default();
        let random: [u8; 10] = std::array::from_fn(|_| self.rng.u8(..));
        OrderId(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    fn gap(&mut self) -> Duration {
        Duration::minutes(self.rng.i64(10..=36 * 60))
    }

    /// How long before a step happens: timers and late cancellations wait for their deadline.
    fn wait(&mut self, order: &Simulated, step: Step) -> Duration {
        let due = self.known.get(&order.id).and_then(|known| known.due);
        match (step, due) {
            (Step::AwaitTimer, _) => Duration::days(8),
            (Step::LateCancel, Some(due)) => {
                (due - self.clock).max(Duration::zero()) + Duration::hours(2)
            }
            _ => self.gap(),
        }
    }

    async fn place(&mut self, order: &Simulated) -> Result<(), CommandError> {
        let price = Money::new(
            Decimal::new(self.rng.i64(5..=500) * 500, 2),
            Currency::from_code("EUR").map_err(Rejection::from)?,
        )
        .map_err(Rejection::from)?;
        let command = Command::Place {
            by: order.buyer,
            at: self.clock,
            order_id: order.id,
            seller: order.seller.user_id,
            title: "A simulated order".into(),
            price,
            delivery_days: self.rng.u32(2..=10),
        };
        self.send(order.id, command).await
    }

    async fn act(&mut self, order: &Simulated, step: Step) -> Result<(), CommandError> {
        let (by, at) = (order.seller, self.clock);
        let buyer = order.buyer;
        let reason = || "simulated".to_owned();
        let held = self.known.get(&order.id).and_then(|known| known.held);
        let half = held
            .and_then(|h| Money::new((h.amount() / Decimal::TWO).round_dp(2), h.currency()).ok());
        let command = match step {
            Step::AwaitTimer => return Ok(()),
            Step::Confirm => Command::Confirm { by, at },
            Step::Decline => Command::Decline {
                by,
                at,
                reason: reason(),
            },
            Step::BuyerCancel => Command::Cancel {
                by: buyer,
                at,
                reason: reason(),
            },
            Step::Extra => Command::BuyExtra {
                by: buyer,
                at,
                kind: ExtraKind::Option,
                description: "express delivery".into(),
                price: Money::parse(
                    "25.00",
                    Currency::from_code("EUR").map_err(Rejection::from)?,
                )
                .map_err(Rejection::from)?,
                extra_days: 1,
            },
            Step::Extend => Command::ExtendDeadline {
                by: buyer,
                at,
                due_at: at + Duration::days(self.rng.i64(3..=10)),
            },
            Step::PartialRefund => match half {
                Some(amount) => Command::PartialRefund {
                    by,
                    at,
                    amount,
                    reason: reason(),
                },
                None => return Ok(()),
            },
            Step::Deliver => Command::Deliver {
                by,
                at,
                message: "here it is".into(),
            },
            Step::RequestRevision => Command::RequestRevision {
                by: buyer,
                at,
                reason: reason(),
            },
            Step::AcceptRevision => Command::AcceptRevision {
                by,
                at,
                delivery_days: 2,
            },
            Step::RefuseRevision => Command::RefuseRevision {
                by,
                at,
                reason: reason(),
            },
            Step::Close => Command::Close { by: buyer, at },
            Step::Dispute => Command::OpenDispute {
                by: buyer,
                at,
                reason: reason(),
            },
            Step::Resolve(outcome) => Command::ResolveDispute {
                by: Actor::new(Role::Mediator, UserId(Uuid::from_u128(3_000_000))),
                at,
                resolution: match (outcome, half) {
                    (0, _) => Resolution::Release,
                    (2, Some(refund)) => Resolution::Split { refund },
                    _ => Resolution::Refund,
                },
                note: "simulated ruling".into(),
            },
            Step::RequestCancellation => Command::RequestCancellation {
                by,
                at,
                reason: reason(),
            },
            Step::AgreeCancellation => Command::AgreeCancellation { by: buyer, at },
            Step::SellerCancel => Command::Cancel {
                by,
                at,
                reason: reason(),
            },
            Step::LateCancel => Command::Cancel {
                by: buyer,
                at,
                reason: "late".into(),
            },
            Step::Review => Command::LeaveReview {
                by: buyer,
                at,
                rating: self.rng.u8(3..=5),
                comment: None,
            },
        };
        self.send(order.id, command).await
    }

    async fn send(&mut self, order: OrderId, command: Command) -> Result<(), CommandError> {
        let request = CommandRequest::new(self.uuid(), order, command);
        self.report.commands += 1;
        match self.handler.handle(request).await {
            Ok(outcome) => self.fold(&outcome),
            Err(CommandError::Rejected(_)) => self.report.refused += 1,
            Err(other) => return Err(other),
        }
        Ok(())
    }

    async fn fire_timers(&mut self) -> Result<(), CommandError> {
        let mut changed = Vec::new();
        let fired =
            fire_due_timers_in_order(&self.handler, &self.timers, self.clock, &mut changed).await?;
        self.report.timers_fired += fired.fired as u64;
        self.report.timers_refused += fired.refused as u64;
        for outcome in &changed {
            self.fold(outcome);
        }
        Ok(())
    }

    /// The views follow this simulation's orders from what its commands appended: an
    /// outcome's events are consecutive in their stream and in `$all`.
    fn fold(&mut self, outcome: &Outcome) {
        if let Some(order) = outcome.state.order() {
            let known = Known {
                due: order.due_at,
                // Escrow's view holds an order's escrow until it closes or is cancelled.
                held: (!order.status.is_terminal()).then_some(order.escrow_held),
            };
            self.known.insert(outcome.order_id, known);
        }
        let last = outcome.events.len().saturating_sub(1) as u64;
        for (index, event) in outcome.events.iter().enumerate() {
            let back = last - index as u64;
            let fact = Fact {
                position: outcome.position.saturating_sub(back),
                order: outcome.order_id,
                revision: outcome.revision.saturating_sub(back),
                recorded_at: self.clock,
                event: event.clone(),
            };
            self.timers.apply(&fact);
        }
    }
}
