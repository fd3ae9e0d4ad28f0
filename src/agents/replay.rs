//! DDPG's replay buffer: a bounded FIFO of transitions, sampled uniformly with replacement.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::Rng;

use crate::env::STATE_DIM;

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: [f32; STATE_DIM],
    pub action: f32,
    /// The episode's raw final reward; DDPG subtracts its baseline when the transition is sampled.
    pub reward: f32,
    pub next: [f32; STATE_DIM],
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    items: VecDeque<Transition>,
    capacity: usize,
}

impl ReplayBuffer {
    pub fn new(capacity: usize) -> Self {
        ReplayBuffer {
            items: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The stored transitions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Transition> {
        self.items.iter()
    }

    /// Appends, dropping the oldest transition when full.
    pub fn push(&mut self, t: Transition) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(t);
    }

    /// `n` transitions drawn uniformly with replacement (empty if the buffer is).
    pub fn sample(&self, n: usize, rng: &mut StdRng) -> Vec<&Transition> {
        if self.items.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|_| &self.items[rng.random_range(0..self.items.len())])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(r: f32) -> Transition {
        Transition {
            state: [0.0; STATE_DIM],
            action: 0.5,
            reward: r,
            next: [0.0; STATE_DIM],
            done: false,
        }
    }

    #[test]
    fn keeps_the_newest_capacity_items() {
        let mut b = ReplayBuffer::new(3);
        for r in 0..5 {
            b.push(t(r as f32));
        }
        assert_eq!(b.len(), 3);
        let rewards: Vec<f32> = b.items.iter().map(|x| x.reward).collect();
        assert_eq!(rewards, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn samples_only_stored_items_and_repeats_with_the_seed() {
        let mut b = ReplayBuffer::new(10);
        for r in 0..4 {
            b.push(t(r as f32));
        }
        let s1: Vec<f32> = b
            .sample(50, &mut StdRng::seed_from_u64(1))
            .iter()
            .map(|x| x.reward)
            .collect();
        let s2: Vec<f32> = b
            .sample(50, &mut StdRng::seed_from_u64(1))
            .iter()
            .map(|x| x.reward)
            .collect();
        assert_eq!(s1, s2);
        assert!(s1.iter().all(|r| (0.0..4.0).contains(r)));
        assert!(ReplayBuffer::new(2)
            .sample(5, &mut StdRng::seed_from_u64(0))
            .is_empty());
    }
}
