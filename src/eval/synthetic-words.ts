/**
 * Word tables for the synthetic retrieval dataset. Each pair is [word used in documents, word used
 * in queries]: the two share no token, so a query can only be matched to its document through the
 * meaning of the words, not their spelling.
 */

export type Pair = readonly [doc: string, query: string];

export const PROFESSIONS: readonly Pair[] = [
  ['physician', 'doctor'], ['attorney', 'lawyer'], ['carpenter', 'woodworker'], ['chef', 'cook'],
  ['pilot', 'aviator'], ['author', 'novelist'], ['teacher', 'educator'], ['farmer', 'grower'],
  ['sailor', 'mariner'], ['painter', 'artist'], ['pharmacist', 'druggist'], ['veterinarian', 'vet'],
  ['journalist', 'reporter'], ['photographer', 'shutterbug'], ['librarian', 'archivist'],
  ['baker', 'bread maker'], ['tailor', 'dressmaker'], ['plumber', 'pipefitter'], ['mechanic', 'repairman'],
  ['nurse', 'caregiver'], ['judge', 'magistrate'], ['soldier', 'serviceman'], ['scientist', 'researcher'],
  ['professor', 'lecturer'], ['accountant', 'bookkeeper'], ['banker', 'financier'], ['gardener', 'landscaper'],
  ['butcher', 'meat cutter'], ['fisherman', 'angler'], ['miner', 'quarryman'], ['potter', 'ceramicist'],
  ['blacksmith', 'ironworker'], ['jeweler', 'goldsmith'], ['translator', 'interpreter'],
  ['astronomer', 'stargazer'], ['poet', 'versifier'], ['sculptor', 'statue carver'], ['firefighter', 'fireman'],
  ['detective', 'investigator'], ['shepherd', 'herder'], ['weaver', 'textile maker'], ['brewer', 'beer maker'],
  ['courier', 'messenger'], ['diplomat', 'ambassador'], ['historian', 'chronicler'], ['programmer', 'coder'],
];

export const DEVICES: readonly Pair[] = [
  ['lamp', 'lantern'], ['boat', 'vessel'], ['clock', 'timepiece'], ['engine', 'motor'], ['bicycle', 'bike'],
  ['telescope', 'spyglass'], ['camera', 'photo box'], ['loom', 'weaving frame'], ['kettle', 'water boiler'],
  ['stove', 'oven'], ['radio', 'wireless set'], ['plow', 'tiller'], ['carriage', 'coach'],
  ['compass', 'direction finder'], ['umbrella', 'parasol'], ['drill', 'borer'], ['fan', 'ventilator'],
  ['scale', 'balance'], ['lock', 'latch'], ['printer', 'printing press'], ['ladder', 'climbing frame'],
  ['saw', 'cutting blade'],
];

export const ADJECTIVES: readonly Pair[] = [
  ['solar', 'sun-powered'], ['portable', 'handheld'], ['silent', 'quiet'], ['tiny', 'miniature'],
  ['underwater', 'submersible'], ['electric', 'battery-driven'], ['wooden', 'oak-carved'], ['folding', 'collapsible'],
  ['automatic', 'self-operating'], ['floating', 'buoyant'], ['steam', 'vapor-driven'], ['waterproof', 'rainproof'],
  ['rotating', 'spinning'], ['magnetic', 'lodestone'], ['mechanical', 'clockwork'], ['heated', 'thermal'],
  ['cheap', 'inexpensive'], ['giant', 'enormous'], ['hydraulic', 'fluid-powered'], ['armored', 'plated'],
];

export const PRODUCTS: readonly Pair[] = [
  ['wool', 'fleece'], ['pottery', 'ceramics'], ['glassware', 'crystal'], ['lace', 'embroidery'],
  ['honey', 'beekeeping'], ['timber', 'lumber'], ['cheese', 'dairy'], ['wine', 'vineyards'],
  ['carpets', 'rugs'], ['leather', 'hides'], ['bread', 'bakeries'], ['tea', 'infusions'],
  ['copper', 'ore'], ['ships', 'shipyards'], ['apples', 'orchards'], ['fish', 'seafood'],
  ['paper', 'parchment'], ['perfume', 'fragrances'], ['spices', 'seasonings'], ['candles', 'tapers'],
  ['beer', 'ale'], ['jewelry', 'gemstones'], ['soap', 'cleansers'], ['furniture', 'cabinetry'],
  ['marble', 'quarries'], ['chocolate', 'cocoa'], ['rope', 'cordage'], ['bells', 'chimes'],
];

/** Town sizes; they appear only in documents, as distractor words. */
export const SIZES = ['small', 'large', 'sleepy', 'busy', 'hillside', 'walled', 'old', 'growing'];

/** Traits that pad person documents with words no query uses. */
export const TRAITS = ['patient', 'stubborn', 'generous', 'meticulous', 'cheerful', 'reserved', 'curious', 'ambitious'];

/** Syllables for generated names; they are meaningless, so no name leaks an attribute. */
export const SYLLABLES = [
  'ka', 'lo', 'ren', 'mi', 'sa', 'tor', 'vel', 'an', 'dri', 'bel', 'cor', 'fen', 'gal', 'hal', 'is', 'jor',
  'ko', 'lun', 'mar', 'nel', 'or', 'pen', 'quil', 'ros', 'sil', 'tam', 'ul', 'var', 'wen', 'yor', 'zel', 'ba',
];

export const TOWN_SUFFIXES = ['ford', 'mere', 'holm', 'wick', 'stead', 'dale', 'port', 'by', 'thorpe', 'haven'];
