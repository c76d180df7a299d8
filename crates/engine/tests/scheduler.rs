//! The scheduler with fake sequences: no model, tokens "sampled" by a rule.

use std::collections::HashMap;

use engine::scheduler::{AdmitError, Scheduler, SchedulerConfig, SeqId, Share, Work};

fn cfg(n_blocks: usize) -> SchedulerConfig {
    SchedulerConfig {
        block_size: 4,
        n_blocks,
        max_seq_len: 1000,
        prefill_chunk: 8,
        max_batch_tokens: 24,
        max_running: 16,
    }
}

/// Runs the scheduler until every sequence has generated its `max_tokens`;
/// returns the work of every step and the preemptions.
fn drive(s: &mut Scheduler, max_tokens: &HashMap<SeqId, usize>) -> (Vec<Vec<Work>>, Vec<SeqId>) {
    let mut steps = Vec::new();
    let mut preempted = Vec::new();
    let mut generated: HashMap<SeqId, usize> = HashMap::new();
    for _ in 0..10_000 {
        if s.n_running() + s.n_waiting() == 0 {
            return (steps, preempted);
        }
        let (work, p) = s.schedule();
        preempted.extend(p);
        assert!(!work.is_empty(), "no progress with {} running, {} waiting", s.n_running(), s.n_waiting());
        let sampled: Vec<Option<u32>> =
            work.iter().map(|w| w.sample.then_some(w.id as u32 * 1000 + w.start as u32)).collect();
        s.advance(&work, &sampled);
        for w in work.iter().filter(|w| w.sample) {
            let n = generated.entry(w.id).or_default();
            *n += 1;
            if *n == max_tokens[&w.id] {
                s.remove(w.id);
            }
        }
        steps.push(work);
    }
    panic!("did not finish");
}

#[test]
fn a_prompt_goes_in_fixed_chunks_then_decodes() {
    let mut s = Scheduler::new(cfg(64));
    s.add(1, (0..19).collect(), 3, 0).unwrap();
    let (steps, _) = drive(&mut s, &HashMap::from([(1, 3)]));
    let lens: Vec<(usize, usize, bool)> = steps.iter().flatten().map(|w| (w.start, w.len, w.sample)).collect();
    // 19 prompt tokens in chunks of 8 per step budget 24: 8 + 8 + 3 (sampled), then 2 decodes.
    assert_eq!(lens, vec![(0, 8, false), (8, 8, false), (16, 3, true), (19, 1, true), (20, 1, true)]);
    assert_eq!(s.blocks().n_in_use(), 0);
}

#[test]
fn decode_tokens_and_prompt_chunks_share_a_step() {
    let mut s = Scheduler::new(cfg(64));
    s.add(1, (0..5).collect(), 4, 0).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w, vec![Work { id: 1, start: 0, len: 5, sample: true }]);
    s.advance(&w, &[Some(7)]);
    s.add(2, (100..120).collect(), 2, 0).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w[0], Work { id: 1, start: 5, len: 1, sample: true });
    assert_eq!(w[1], Work { id: 2, start: 0, len: 8, sample: false });
}

#[test]
fn chunk_boundaries_do_not_depend_on_other_load() {
    let alone = {
        let mut s = Scheduler::new(cfg(64));
        s.add(9, (0..30).collect(), 2, 0).unwrap();
        drive(&mut s, &HashMap::from([(9, 2)])).0
    };
    let busy = {
        let mut s = Scheduler::new(cfg(64));
        for id in 0..5 {
            s.add(id, (0..(3 + id as u32 * 7)).map(|t| t + 50).collect(), 5, 0).unwrap();
        }
        s.add(9, (0..30).collect(), 2, 0).unwrap();
        let mut max = HashMap::from([(9, 2)]);
        for id in 0..5 {
            max.insert(id, 5);
        }
        drive(&mut s, &max).0
    };
    let of9 = |steps: &[Vec<Work>]| -> Vec<(usize, usize)> {
        steps.iter().flatten().filter(|w| w.id == 9).map(|w| (w.start, w.len)).collect()
    };
    assert_eq!(of9(&alone), of9(&busy));
}

#[test]
fn a_shared_prefix_is_computed_once_per_tenant() {
    let mut s = Scheduler::new(cfg(64));
    let prompt: Vec<u32> = (0..18).collect();
    s.add(1, prompt.clone(), 1, 7).unwrap();
    drive(&mut s, &HashMap::from([(1, 1)]));
    // Same tenant: the 4 full blocks of the first 17 tokens are reused.
    s.add(2, prompt.clone(), 1, 7).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w, vec![Work { id: 2, start: 16, len: 2, sample: true }]);
    assert_eq!(s.get(2).unwrap().n_cached, 16);
    s.advance(&w, &[Some(1)]);
    s.remove(2);
    // Another tenant: nothing is shared.
    s.add(3, prompt, 1, 8).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w[0].start, 0);
    assert_eq!(s.get(3).unwrap().n_cached, 0);
    let (hits, _) = (s.blocks().prefix_stats().1, ());
    assert_eq!(hits, 4);
}

#[test]
fn a_prompt_reuses_the_part_of_a_cached_block_it_agrees_on() {
    let mut s = Scheduler::new(cfg(64));
    s.add(1, (0..12).collect(), 1, 7).unwrap();
    drive(&mut s, &HashMap::from([(1, 1)]));
    // Agrees with the first prompt on 10 tokens: two whole blocks and two
    // positions of the third, which come from a copy of that block.
    let second: Vec<u32> = (0..10).chain([99, 98]).collect();
    s.add(2, second.clone(), 1, 7).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w, vec![Work { id: 2, start: 10, len: 2, sample: true }]);
    assert_eq!(s.get(2).unwrap().n_cached, 10);
    // Positions looked up (all but each prompt's last) and taken, both prompts so far.
    assert_eq!(s.prefix_tokens(), (22, 10));
    let copies = s.pending_copies().to_vec();
    assert_eq!(copies.len(), 1);
    assert_eq!((copies[0].dst, copies[0].len), (s.get(2).unwrap().table[2], 2));
    // Held: the two shared blocks, the copy's source and its own third block.
    assert_eq!(s.blocks().n_in_use(), 4);
    s.copies_done();
    assert_eq!(s.blocks().n_in_use(), 3);
    s.advance(&w, &[Some(5)]);
    s.remove(2);
    assert_eq!(s.blocks().n_in_use(), 0);
    // Another tenant gets no part of it.
    s.add(3, second, 1, 8).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w[0].start, 0);
    assert!(s.pending_copies().is_empty());
}

#[test]
fn a_sequence_that_leaves_before_its_copy_gives_back_both_blocks() {
    let mut s = Scheduler::new(cfg(64));
    s.add(1, (0..12).collect(), 1, 0).unwrap();
    drive(&mut s, &HashMap::from([(1, 1)]));
    s.add(2, (0..11).chain([50]).collect(), 1, 0).unwrap();
    s.schedule();
    assert_eq!(s.pending_copies().len(), 1);
    s.remove(2);
    assert!(s.pending_copies().is_empty(), "a copy into a block that was let go");
    assert_eq!(s.blocks().n_in_use(), 0);
}

#[test]
fn a_prompt_waits_a_step_for_the_common_part_another_is_computing() {
    let mut s = Scheduler::new(cfg(64));
    // Arrive together and agree on 10 positions: the second waits while the
    // first computes its first chunk, then takes those 8 positions (two whole
    // blocks) from the cache.
    s.add(1, (0..12).collect(), 1, 0).unwrap();
    s.add(2, (0..10).chain([99, 98]).collect(), 1, 0).unwrap();
    let (w, _) = s.schedule();
    assert_eq!(w, vec![Work { id: 1, start: 0, len: 8, sample: false }]);
    assert_eq!(s.n_waiting(), 1);
    s.advance(&w, &[None]);
    let (w, _) = s.schedule();
    assert_eq!(w, vec![Work { id: 1, start: 8, len: 4, sample: true }, Work { id: 2, start: 8, len: 4, sample: true }]);
    assert_eq!(s.get(2).unwrap().n_cached, 8);
}

#[test]
fn prompts_that_share_little_or_belong_to_another_tenant_do_not_wait() {
    for (second, salt) in [((0..7).chain(50..55).collect::<Vec<u32>>(), 0), ((0..12).collect(), 1)] {
        let mut s = Scheduler::new(cfg(64));
        s.add(1, (0..12).collect(), 1, 0).unwrap();
        s.add(2, second, 1, salt).unwrap();
        let (w, _) = s.schedule();
        assert_eq!(w.iter().map(|w| w.id).collect::<Vec<_>>(), vec![1, 2], "salt {salt}");
    }
}

#[test]
fn running_out_of_blocks_preempts_the_newest_and_everyone_finishes() {
    // 12 blocks of 4 positions; three sequences that each grow to 20 positions.
    let mut s = Scheduler::new(cfg(12));
    let mut max = HashMap::new();
    for id in 0..3 {
        s.add(id, (0..8).map(|t| t + id as u32 * 100).collect(), 12, 0).unwrap();
        max.insert(id, 12);
    }
    let (_, preempted) = drive(&mut s, &max);
    assert!(!preempted.is_empty(), "the pool is too small for all three at once");
    assert!(preempted.iter().all(|&id| id != 0), "the oldest is never preempted: {preempted:?}");
    assert_eq!(s.blocks().n_in_use(), 0);
    assert_eq!(s.n_running() + s.n_waiting(), 0);
}

#[test]
fn requests_that_can_never_run_are_rejected_at_admission() {
    let s = Scheduler::new(cfg(10));
    assert_eq!(s.check(0, 5), Err(AdmitError::Empty));
    assert!(matches!(s.check(990, 20), Err(AdmitError::TooLong { total: 1010, limit: 1000, .. })));
    assert!(matches!(s.check(30, 20), Err(AdmitError::TooBig { needed: 13, total: 10 })));
    assert_eq!(s.check(30, 10), Ok(()));
}

#[test]
fn removing_a_waiting_or_running_sequence_frees_its_blocks() {
    let mut s = Scheduler::new(cfg(16));
    s.add(1, (0..10).collect(), 5, 0).unwrap();
    s.add(2, (0..10).collect(), 5, 1).unwrap();
    let (w, _) = s.schedule();
    assert!(!w.is_empty());
    assert!(s.blocks().n_in_use() > 0);
    assert!(s.remove(1).is_some());
    assert!(s.remove(2).is_some());
    assert!(s.remove(3).is_none());
    assert_eq!(s.blocks().n_in_use(), 0);
}

/// Runs `s` until empty, removing each sequence once it has generated its
/// `max_tokens`; returns the ids in the order they were first admitted.
fn admission_order(s: &mut Scheduler, max_tokens: &HashMap<SeqId, usize>) -> Vec<SeqId> {
    let mut order: Vec<SeqId> = Vec::new();
    let mut generated: HashMap<SeqId, usize> = HashMap::new();
    for _ in 0..100_000 {
        if s.n_running() + s.n_waiting() == 0 {
            return order;
        }
        let (work, _) = s.schedule();
        assert!(!work.is_empty());
        for w in &work {
            if !order.contains(&w.id) {
                order.push(w.id);
            }
        }
        let sampled: Vec<Option<u32>> = work.iter().map(|w| w.sample.then_some(7)).collect();
        s.advance(&work, &sampled);
        for w in work.iter().filter(|w| w.sample) {
            let n = generated.entry(w.id).or_default();
            *n += 1;
            if *n == max_tokens[&w.id] {
                s.remove(w.id);
            }
        }
    }
    panic!("did not finish");
}

fn small_running(max_running: usize) -> SchedulerConfig {
    SchedulerConfig { max_running, ..cfg(4096) }
}

#[test]
fn one_tenants_burst_does_not_starve_another() {
    let mut s = Scheduler::new(small_running(4));
    let mut max_tokens = HashMap::new();
    // Tenant 1 bursts 100 requests, then tenant 2 sends 5.
    for id in 0..100 {
        s.add_for(id, vec![1, 2, 3], 4, 0, Share { tenant: 1, weight: 1 }).unwrap();
        max_tokens.insert(id, 4);
    }
    for id in 100..105 {
        s.add_for(id, vec![4, 5, 6], 4, 0, Share { tenant: 2, weight: 1 }).unwrap();
        max_tokens.insert(id, 4);
    }
    let order = admission_order(&mut s, &max_tokens);
    assert_eq!(order.len(), 105);
    let last_b = order.iter().rposition(|&id| id >= 100).unwrap();
    // Alternating: tenant 2's five are admitted within the first 4 + 2·5 slots,
    // not after tenant 1's hundred.
    assert!(last_b < 14, "tenant 2's last request was admitted {}th: {order:?}", last_b + 1);
    // Within a tenant, first come first served.
    let a: Vec<SeqId> = order.iter().copied().filter(|&id| id < 100).collect();
    assert_eq!(a, (0..100).collect::<Vec<_>>());
}

#[test]
fn weights_share_admissions_in_proportion() {
    let mut s = Scheduler::new(small_running(1));
    let mut max_tokens = HashMap::new();
    for id in 0..60 {
        s.add_for(id, vec![1, 2], 1, 0, Share { tenant: 1, weight: 1 }).unwrap();
        s.add_for(1000 + id, vec![3, 4], 1, 0, Share { tenant: 2, weight: 2 }).unwrap();
        max_tokens.insert(id, 1);
        max_tokens.insert(1000 + id, 1);
    }
    let order = admission_order(&mut s, &max_tokens);
    // Of the first 30 admissions, tenant 2 (weight 2) has two thirds.
    let heavy = order[..30].iter().filter(|&&id| id >= 1000).count();
    assert!((19..=21).contains(&heavy), "weight-2 tenant got {heavy} of 30: {order:?}");
}

#[test]
fn one_tenant_is_first_come_first_served() {
    let mut s = Scheduler::new(small_running(2));
    let mut max_tokens = HashMap::new();
    for id in 0..20 {
        s.add_for(id, vec![1, 2, 3], 1 + (id as usize % 3), 0, Share { tenant: 9, weight: 3 }).unwrap();
        max_tokens.insert(id, 1 + (id as usize % 3));
    }
    assert_eq!(admission_order(&mut s, &max_tokens), (0..20).collect::<Vec<_>>());
}

#[test]
fn an_idle_tenant_banks_no_credit() {
    let mut s = Scheduler::new(small_running(1));
    let mut max_tokens = HashMap::new();
    // Tenant 2 runs alone for a while, then tenant 1 arrives with a burst and
    // tenant 2 keeps sending: they alternate rather than tenant 1 catching up.
    for id in 0..10 {
        s.add_for(id, vec![1], 1, 0, Share { tenant: 2, weight: 1 }).unwrap();
        max_tokens.insert(id, 1);
    }
    assert_eq!(admission_order(&mut s, &max_tokens).len(), 10);
    for id in 10..20 {
        s.add_for(id, vec![1], 1, 0, Share { tenant: 1, weight: 1 }).unwrap();
        s.add_for(100 + id, vec![2], 1, 0, Share { tenant: 2, weight: 1 }).unwrap();
        max_tokens.insert(id, 1);
        max_tokens.insert(100 + id, 1);
    }
    let order = admission_order(&mut s, &max_tokens);
    // Without the virtual clock tenant 1 (pass 0) would take its ten first.
    let of_2 = order[..6].iter().filter(|&&id| id >= 100).count();
    assert!((2..=4).contains(&of_2), "{order:?}");
}
