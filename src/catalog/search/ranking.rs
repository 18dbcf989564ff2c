//! Matches handed out best first, put in order only as far as they are read. A search ranks every tool
//! that matches (the semantic signal matches them all), but `find_tools` reads the first hundred or so:
//! sorting ten thousand scores, ties broken by name, was most of a search's own time.

use super::Found;

/// How many matches the first look puts in order; each later look takes twice as many as are in order.
const FIRST_LOOK: usize = 128;

/// Every place an index's tools take when sorted by exposed name, for breaking ties in score.
pub fn name_places<S: AsRef<str>>(names: &[S]) -> Vec<u32> {
    let mut by_name: Vec<u32> = (0..).take(names.len()).collect();
    by_name.sort_unstable_by(|a, b| names[*a as usize].as_ref().cmp(names[*b as usize].as_ref()));
    let mut places = vec![0; names.len()];
    for (place, position) in (0u32..).zip(by_name) {
        places[position as usize] = place;
    }
    places
}

/// An iterator over matches, highest score first and ties by name, that selects and sorts the next
/// best ones only when they are asked for.
#[derive(Debug)]
pub struct BestFirst<'a> {
    found: Vec<Found>,
    name_places: &'a [u32],
    in_order: usize,
    next: usize,
}

impl<'a> BestFirst<'a> {
    /// Orders `found` by score, then by each position's place in `name_places` (one per indexed tool,
    /// as [`name_places`] makes them, so no two matches compare equal).
    pub fn new(found: Vec<Found>, name_places: &'a [u32]) -> Self {
        Self {
            found,
            name_places,
            in_order: 0,
            next: 0,
        }
    }

    /// Puts the next best matches in order: a selection over the rest, then a sort of those taken.
    fn order_more(&mut self) {
        let places = self.name_places;
        let better = |a: &Found, b: &Found| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| places[a.position].cmp(&places[b.position]))
        };
        let rest = &mut self.found[self.in_order..];
        let take = self.in_order.max(FIRST_LOOK).min(rest.len());
        if take == 0 {
            return;
        }
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, better);
        }
        rest[..take].sort_unstable_by(better);
        self.in_order += take;
    }
}

impl Iterator for BestFirst<'_> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        if self.next == self.in_order {
            self.order_more();
        }
        let found = self.found.get(self.next).copied()?;
        self.next += 1;
        Some(found)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.found.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for BestFirst<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_in_part_or_whole_it_is_the_full_sort() {
        // Scores with many ties, more matches than several looks take, names in an order of their own.
        let count = 1_000;
        let names: Vec<String> = (0..count).map(|i| format!("tool{:04}", (i * 7_919) % count)).collect();
        let places = name_places(&names);
        let found: Vec<Found> = (0..count)
            .map(|position| Found {
                position,
                score: ((position * 31) % 17) as f32,
            })
            .collect();
        let mut expected = found.clone();
        expected.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| names[a.position].cmp(&names[b.position]))
        });
        let whole: Vec<Found> = BestFirst::new(found.clone(), &places).collect();
        assert_eq!(whole, expected);
        for read in [0, 1, 127, 128, 129, 300, 999] {
            let part: Vec<Found> = BestFirst::new(found.clone(), &places).take(read).collect();
            assert_eq!(part, expected[..read], "the first {read}");
        }
        let mut counted = BestFirst::new(found, &places);
        assert_eq!(counted.len(), count);
        counted.next();
        assert_eq!(counted.len(), count - 1);
        assert_eq!(BestFirst::new(Vec::new(), &places).next(), None);
    }
}
