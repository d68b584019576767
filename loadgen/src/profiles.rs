//! A deterministic, realistic mix of who users are and whom they want to meet, and the
//! open preferences used when only the pairing matters.

use time::Date;
use wire::api::matching::{InterestMode, JoinQueueRequest};
use wire::domain::Gender;

/// A small deterministic generator (splitmix64): the same seed gives the same users.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Interest tags, most popular first (users pick from the front more often).
pub const INTERESTS: [&str; 40] = [
    "music",
    "movies",
    "gaming",
    "travel",
    "books",
    "fitness",
    "anime",
    "cooking",
    "tech",
    "art",
    "football",
    "photography",
    "hiking",
    "coding",
    "fashion",
    "languages",
    "science",
    "history",
    "dogs",
    "cats",
    "coffee",
    "dance",
    "yoga",
    "cars",
    "startups",
    "poetry",
    "chess",
    "memes",
    "crypto",
    "philosophy",
    "basketball",
    "gardening",
    "podcasts",
    "kpop",
    "tea",
    "running",
    "cycling",
    "theatre",
    "astronomy",
    "board_games",
];

/// Who a user is and whom they want.
#[derive(Debug, Clone)]
pub struct Persona {
    /// The user's gender.
    pub gender: Gender,
    /// Age in whole years (18 or more).
    pub age: u8,
    /// The user's interests.
    pub interests: Vec<String>,
    /// What they ask the queue for.
    pub wants: JoinQueueRequest,
}

impl Persona {
    /// A birth date that makes the user `age` today: the first of this month, `age` years
    /// ago (the birthday has always passed this month).
    pub fn birth_date(&self, today: Date) -> Date {
        Date::from_calendar_date(today.year() - i32::from(self.age), today.month(), 1)
            .unwrap_or(today)
    }
}

/// A user of a realistic population: genders about 48 % male, 45 % female, 7 % other;
/// ages 18–60 skewed young; 1–5 interests from a popularity-skewed list; most want the
/// opposite gender or anyone, within about ±5–12 years, widening while they wait;
/// interests mostly preferred, sometimes required (falling back after 30 s), sometimes
/// ignored.
pub fn realistic(rng: &mut Rng) -> Persona {
    let g = rng.unit();
    let gender = if g < 0.48 {
        Gender::Male
    } else if g < 0.93 {
        Gender::Female
    } else {
        Gender::Other
    };
    // Skewed young: the smaller of two uniform draws.
    let age = 18 + rng.between(0, 42).min(rng.between(0, 42)) as u8;
    let count = 1 + rng.between(0, 4) as usize;
    let mut interests = Vec::with_capacity(count);
    while interests.len() < count {
        // Square of a uniform: popular tags more often.
        let u = rng.unit();
        let tag = INTERESTS[((u * u) * INTERESTS.len() as f64) as usize].to_owned();
        if !interests.contains(&tag) {
            interests.push(tag);
        }
    }
    let w = rng.unit();
    let genders = match gender {
        Gender::Male if w < 0.7 => vec![Gender::Female],
        Gender::Female if w < 0.6 => vec![Gender::Male],
        _ => Vec::new(),
    };
    let spread = rng.between(5, 12) as u8;
    let m = rng.unit();
    let interest_mode = if m < 0.8 {
        InterestMode::Preferred
    } else if m < 0.9 {
        InterestMode::Required
    } else {
        InterestMode::Ignored
    };
    let wants = JoinQueueRequest {
        genders: Some(genders),
        min_age: Some(age.saturating_sub(spread).max(18)),
        max_age: Some(age.saturating_add(spread).min(120)),
        interests: Some(interests.clone()),
        interest_mode: Some(interest_mode),
        age_widen_years: Some(5),
        widen_every_secs: Some(5),
        fallback_after_secs: Some(30),
    };
    Persona {
        gender,
        age,
        interests,
        wants,
    }
}

/// A user who takes anyone: for runs where only being paired matters.
pub fn open(rng: &mut Rng) -> Persona {
    let mut persona = realistic(rng);
    persona.wants = JoinQueueRequest {
        genders: Some(Vec::new()),
        min_age: Some(18),
        max_age: Some(120),
        interests: Some(Vec::new()),
        interest_mode: Some(InterestMode::Ignored),
        ..JoinQueueRequest::default()
    };
    persona
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Month;

    #[test]
    fn the_same_seed_gives_the_same_population() {
        let a: Vec<_> = (0..50)
            .scan(Rng::new(7), |r, _| Some(realistic(r).age))
            .collect();
        let b: Vec<_> = (0..50)
            .scan(Rng::new(7), |r, _| Some(realistic(r).age))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_realistic_population_is_a_valid_mix() {
        let mut rng = Rng::new(1);
        let people: Vec<_> = (0..5000).map(|_| realistic(&mut rng)).collect();
        let share = |g: Gender| {
            people.iter().filter(|p| p.gender == g).count() as f64 / people.len() as f64
        };
        assert!((share(Gender::Male) - 0.48).abs() < 0.03);
        assert!((share(Gender::Female) - 0.45).abs() < 0.03);
        for p in &people {
            assert!((18..=60).contains(&p.age));
            assert!((1..=5).contains(&p.interests.len()));
            let (lo, hi) = (p.wants.min_age.unwrap(), p.wants.max_age.unwrap());
            assert!(lo >= 18 && lo <= p.age && hi >= p.age);
        }
    }

    #[test]
    fn a_birth_date_gives_the_age() {
        let today = Date::from_calendar_date(2026, Month::December, 2).unwrap();
        let persona = open(&mut Rng::new(3));
        let born = persona.birth_date(today);
        let mut age = today.year() - born.year();
        if (today.month() as u8, today.day()) < (born.month() as u8, born.day()) {
            age -= 1;
        }
        assert_eq!(age, i32::from(persona.age));
    }
}
