package data

import (
	"math/rand/v2"
	"strings"
)

// The built-in corpus: short, simple children's stories in the spirit of
// TinyStories, generated from templates so that a fresh install has readable
// English to train on without any download. The grammar is deliberately small
// (a few hundred words, a handful of story arcs) so a model of a few million
// parameters can learn it and its samples visibly turn into sentences.

type character struct {
	name, kind   string
	he, him, his string
}

var (
	girlNames = []string{"Lily", "Mia", "Sue", "Anna", "Emma", "Lucy", "Zoe", "Amy", "Ella", "Rose", "Kate", "Sara", "Ruby", "Jill", "Nina", "Daisy"}
	boyNames  = []string{"Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Joe", "Bob", "Finn", "Jake", "Noah", "Eli", "Ned", "Dan", "Luke"}
	kidKinds  = []string{"little girl", "little boy"}
	animals   = []struct{ kind, noise string }{
		{"dog", "woof"}, {"cat", "meow"}, {"bunny", "squeak"}, {"bear", "grr"}, {"bird", "tweet"},
		{"duck", "quack"}, {"frog", "ribbit"}, {"mouse", "squeak"}, {"fox", "yip"}, {"owl", "hoo"},
		{"puppy", "woof"}, {"kitten", "mew"}, {"pig", "oink"}, {"lamb", "baa"},
	}
	animalNames = []string{"Spot", "Fluffy", "Pip", "Coco", "Buddy", "Bella", "Sunny", "Milo", "Tiny", "Rex", "Whiskers", "Hoppy", "Bubbles", "Max"}
	places      = []string{"the park", "the forest", "the garden", "the beach", "the farm", "the school", "the kitchen", "the river", "the big hill", "the town", "the zoo", "the lake", "the yard", "the meadow", "the library", "the store"}
	adjectives  = []string{"red", "blue", "big", "little", "shiny", "soft", "old", "new", "green", "yellow", "pretty", "funny", "round", "tall", "pink", "purple"}
	objects     = []string{"ball", "kite", "hat", "toy car", "book", "shell", "flower", "box", "teddy bear", "boat", "drum", "cup", "doll", "rock", "balloon", "truck", "spoon", "key", "crayon", "bike"}
	foods       = []string{"cake", "apple", "cookie", "pie", "sandwich", "carrot", "banana", "soup", "ice cream", "bread"}
	weathers    = []string{"It was a sunny day.", "The sun was warm and bright.", "It was a windy day.", "The sky was blue and clear.", "It was a cold morning.", "It had rained, and there were puddles everywhere.", "It was a quiet evening."}
	goodFeel    = []string{"happy", "glad", "proud", "excited", "joyful", "thankful"}
	badFeel     = []string{"sad", "scared", "upset", "worried", "lonely", "angry"}
	parents     = []struct{ name, he, him, his string }{{"Mom", "she", "her", "her"}, {"Dad", "he", "him", "his"}, {"Grandma", "she", "her", "her"}, {"Grandpa", "he", "him", "his"}}
	fears       = []string{"the dark", "the big dog next door", "the deep water", "the loud thunder", "the tall slide", "the noisy bees"}
	morals      = []string{
		"From that day on, {H} always shared with {his} friends.",
		"{H} learned that it is good to help others.",
		"{H} learned that being brave is not so hard when you have a friend.",
		"{H} learned to be careful and to say sorry.",
		"And {H} knew that a good friend is better than any toy.",
		"{H} learned that working together makes everything better.",
		"{H} never forgot that day.",
	}
	endings = []string{
		"The end.",
		"They were very happy.",
		"They played together until the sun went down.",
		"That night, {H} went to bed with a big smile.",
		"{H} and {F} were best friends forever.",
		"It was the best day ever.",
	}
)

type storyGen struct {
	r *rand.Rand
	b strings.Builder
	v map[string]string
}

func (g *storyGen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *storyGen) kid() character {
	if g.r.IntN(2) == 0 {
		return character{g.pick(girlNames), kidKinds[0], "she", "her", "her"}
	}
	return character{g.pick(boyNames), kidKinds[1], "he", "him", "his"}
}

func (g *storyGen) pet() (character, string) {
	a := animals[g.r.IntN(len(animals))]
	c := character{g.pick(animalNames), a.kind, "he", "him", "his"}
	if g.r.IntN(2) == 0 {
		c.he, c.him, c.his = "she", "her", "her"
	}
	return c, a.noise
}

// say appends one beat: a template chosen from alternatives with {X}
// placeholders filled from the story's cast.
func (g *storyGen) say(alts ...string) {
	s := g.pick(alts)
	var out strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			out.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:i])
		out.WriteString(g.v[s[i+1:i+j]])
		s = s[i+j+1:]
	}
	t := out.String()
	// Every beat starts a sentence, and templates may start with a pronoun.
	t = capFirst(t)
	if g.b.Len() > 0 && !strings.HasSuffix(g.b.String(), "\n") {
		g.b.WriteByte(' ')
	}
	g.b.WriteString(t)
}

func (g *storyGen) para() { g.b.WriteString("\n\n") }

func article(word string) string {
	switch word[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + word
	}
	return "a " + word
}

func capFirst(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// story writes one story using r.
func (g *storyGen) story() string {
	g.b.Reset()
	h := g.kid()
	var f character
	noise := ""
	if g.r.IntN(3) == 0 {
		f, noise = g.pet()
	} else {
		for f = g.kid(); f.name == h.name; f = g.kid() {
		}
	}
	p := parents[g.r.IntN(len(parents))]
	adj := g.pick(adjectives)
	obj := g.pick(objects)
	place := g.pick(places)
	place2 := g.pick(places)
	for place2 == place {
		place2 = g.pick(places)
	}
	g.v = map[string]string{
		"H": h.name, "he": h.he, "him": h.him, "his": h.his, "Hkind": h.kind,
		"F": f.name, "fhe": f.he, "fhim": f.him, "fhis": f.his, "Fkind": f.kind, "noise": capFirst(noise),
		"P": p.name, "phe": p.he, "phim": p.him, "phis": p.his,
		"O": adj + " " + obj, "obj": obj, "aO": article(adj + " " + obj),
		"place": place, "place2": place2,
		"good": g.pick(goodFeel), "good2": g.pick(goodFeel), "bad": g.pick(badFeel),
		"food": g.pick(foods), "afood": article(g.pick(foods)), "fear": g.pick(fears),
		"adj2": g.pick(adjectives),
	}
	// Opening.
	g.say("Once upon a time, there was a {Hkind} named {H}.",
		"One day, a {Hkind} named {H} woke up early.",
		"There was once a {Hkind} called {H}.",
		"{H} was a {Hkind} who lived in a small house near {place}.",
		"Long ago, in a little town, lived a {Hkind} named {H}.")
	g.say("{he} loved to play outside.", "{he} liked to sing and dance.", "{he} had {aO} that {he} loved very much.",
		"{he} was always curious about everything.", "{he} liked to draw pictures of animals.", "{he} loved {food} more than anything.")
	if f.kind != "little girl" && f.kind != "little boy" {
		g.say("{H} had a {Fkind} named {F}.", "{H} had a pet {Fkind} called {F}.", "{H}'s best friend was a {Fkind} named {F}.")
	} else {
		g.say("{H} had a friend named {F}.", "{H}'s best friend was {F}.", "{F} lived next door, and {fhe} was {H}'s best friend.")
	}
	g.say(weathers...)
	g.para()
	switch g.r.IntN(7) {
	case 0: // lost object
		g.say("One day, {H} took {his} {O} to {place}.", "{H} and {F} went to {place} with the {O}.")
		g.say("{he} played with it all morning.", "They played and laughed for a long time.")
		g.say("But when it was time to go home, the {obj} was gone!", "Then {H} looked down. The {obj} was not there!")
		g.say("{H} felt very {bad}.", "{H} started to cry.", "{H} was so {bad} that {he} sat down on the grass.")
		g.say("\"Where is my {obj}?\" {he} said.", "\"I lost my {obj}!\" said {H}.")
		g.para()
		if noise != "" {
			g.say("\"{noise}!\" said {F}. {F} ran to a big tree and started to dig.", "{F} sniffed the ground. \"{noise}!\" {fhe} barked and ran off.")
		} else {
			g.say("\"Don't worry,\" said {F}. \"I will help you look.\"", "{F} held {H}'s hand. \"We can find it together,\" {fhe} said.")
		}
		g.say("They looked under the bench. They looked behind the bushes.", "They looked high and low.", "They looked near the pond and by the gate.")
		g.say("At last, {F} found the {obj} under a pile of leaves!", "Then {H} saw something {adj2} in the grass. It was the {obj}!")
		g.say("{H} was so {good}.", "{H} jumped up and down.", "{H} gave {F} a big hug.")
		g.say("\"Thank you, {F}!\" {he} said.", "\"You are the best friend ever,\" said {H}.")
	case 1: // wanting something
		g.say("One day, {H} saw {aO} in the window of the store.", "At {place}, {H} saw another child with {aO}.")
		g.say("{he} wanted it very much.", "{he} wished {he} could have one too.")
		g.say("{he} ran home and asked {P}, \"Can I have {aO}, please?\"", "\"{P}, can I get {aO}?\" {H} asked.")
		g.say("{P} smiled. \"If you help me today, we will see,\" {phe} said.", "{P} said, \"You have to be patient, {H}.\"")
		g.para()
		g.say("So {H} helped {P} wash the dishes.", "So {H} cleaned {his} room and fed the cat.", "So {H} helped {P} in the garden all day.")
		g.say("It was hard work, but {H} did not stop.", "{he} was tired, but {he} kept going.")
		g.say("The next morning, there was a box on the table.", "After a few days, {P} had a surprise for {him}.")
		g.say("Inside was {aO}!", "It was the {O} {he} wanted!")
		g.say("{H} was very {good}.", "{H} smiled a big smile.")
		g.say("\"Thank you, {P}!\" {he} said, and {he} hugged {phim}.", "{he} showed it to {F}, and they played with it together.")
	case 2: // fear
		g.say("{H} was scared of {fear}.", "There was one thing {H} did not like: {fear}.")
		g.say("Every time {he} thought about it, {he} felt {bad}.", "{he} did not want to go near it.")
		g.say("One day, {H} and {F} went to {place}.", "One evening, {P} took {H} and {F} to {place}.")
		g.para()
		g.say("There, {H} had to face {fear}.", "Soon {H} saw {fear}, and {his} legs began to shake.")
		g.say("\"I can't do it,\" said {H}.", "\"I am too scared,\" {H} said in a small voice.")
		if noise != "" {
			g.say("{F} came close and licked {his} hand. \"{noise},\" said {F}.", "{F} sat next to {him} and wagged {fhis} tail.")
		} else {
			g.say("{F} held {his} hand. \"I am here with you,\" {fhe} said.", "\"You are brave,\" said {F}. \"Let's do it together.\"")
		}
		g.say("{H} took a deep breath.", "{H} counted to three.")
		g.say("It was not so bad after all!", "{he} did it, and nothing bad happened.")
		g.say("{H} felt proud and brave.", "{H} laughed. \"That was fun!\" {he} said.")
	case 3: // sharing conflict
		g.say("One day, {H} and {F} found {aO} at {place}.", "{H} and {F} were playing with {aO}.")
		g.say("\"It is mine!\" said {H}.", "\"I want it!\" said {H}, and {he} pulled it.")
		g.say("\"No, it is mine!\" said {F}.", "{F} pulled it too.")
		g.say("They pulled and pulled.", "They did not want to share.")
		g.say("Then, snap! The {obj} broke.", "Then the {obj} fell into a puddle.")
		g.para()
		g.say("Now they were both {bad}.", "{H} and {F} looked at each other. They felt {bad}.")
		g.say("{P} came and saw them. \"What happened?\" {phe} asked.", "{P} saw what happened and sat down with them.")
		g.say("\"When we fight, nobody wins,\" said {P}. \"When we share, everybody can play.\"", "{P} said, \"Friends take turns.\"")
		g.say("{H} said, \"I am sorry, {F}.\"", "{H} looked at {F}. \"Sorry,\" {he} said.")
		g.say("\"I am sorry too,\" said {F}.", "{F} smiled and said, \"It's okay.\"")
		g.say("{P} helped them fix the {obj}, and they took turns.", "Together they cleaned the {obj}, and then they played with it one at a time.")
	case 4: // discovery
		g.say("One morning, {H} went to {place} to explore.", "{H} and {F} went on an adventure to {place}.")
		g.say("{he} walked and walked.", "They saw birds and trees and flowers.")
		g.say("Then {he} saw something strange.", "Suddenly, {H} stopped. There was something {adj2} on the ground.")
		g.say("It was a little box.", "It was an old map.", "It was a small door in a tree.")
		g.say("\"What is this?\" said {H}.", "\"Look!\" said {H}. \"Let's see what it is.\"")
		g.para()
		g.say("{he} opened it slowly.", "They looked closer.")
		g.say("Inside there was {aO} and a note that said, \"For a kind friend.\"", "It showed the way to a hidden garden full of flowers.", "Inside there were many shiny stones.")
		g.say("{H} was very surprised.", "{H} could not believe it.")
		g.say("{he} ran home to show {P}.", "They took it home to show {P}.")
		g.say("{P} said, \"What a wonderful thing you found!\"", "{P} smiled and said, \"You are a great explorer.\"")
		g.say("{H} felt {good}.", "{H} and {F} laughed and danced.")
	case 5: // helping an animal
		g.say("One day, {H} went for a walk to {place}.", "{H} and {F} went to {place} to play.")
		g.say("{he} heard a small sound.", "{he} saw a little bird on the ground near a tree.", "{he} saw a tiny kitten up in a tree.")
		g.say("It was {bad} and could not get home.", "It looked hurt and alone.")
		g.say("\"We have to help,\" said {H}.", "\"Poor thing,\" said {H}. \"I will help you.\"")
		g.para()
		g.say("{H} asked {P} for help.", "{H} ran to get {P}.")
		g.say("{P} came with a ladder and a soft blanket.", "{P} brought a little box with a warm blanket.")
		g.say("They helped it very gently.", "Together they carried it home and gave it water.")
		g.say("After a few days, it was strong again.", "Soon it was happy and safe.")
		g.say("It came back every day to visit {H}.", "It sang a song for {H} every morning.")
		g.say("{H} felt {good} that {he} had helped.", "{H} was {good} to have a new friend.")
	default: // making something
		g.say("One day, {H} and {F} wanted to make {afood} for {P}.", "{H} wanted to build a big castle at {place}.", "{H} and {F} decided to make a card for {P}.")
		g.say("They got everything they needed.", "{H} found paper, glue and crayons.", "They worked very hard.")
		g.say("But then, oops! It all fell down.", "But {H} made a mess. Everything was sticky!", "But then the wind blew it away.")
		g.say("{H} felt {bad}.", "\"Oh no!\" said {H}.")
		g.para()
		g.say("\"Let's try again,\" said {F}.", "{F} said, \"We can fix it.\"")
		g.say("This time they were more careful.", "This time they went slowly and helped each other.")
		g.say("It was even better than before!", "At last it was done, and it looked beautiful.")
		g.say("They gave it to {P}.", "They showed it to {P}.")
		g.say("{P} was very {good2}. \"Thank you!\" {phe} said.", "\"I love it!\" said {P}, and {phe} gave them a big hug.")
	}
	g.para()
	if g.r.IntN(2) == 0 {
		g.say(morals...)
	}
	g.say(endings...)
	return g.b.String()
}

// GenerateStories returns n stories from seed. The same (seed, n) always
// gives the same text (math/rand/v2's PCG is specified, not platform-dependent).
func GenerateStories(seed uint64, n int) []string {
	g := &storyGen{r: rand.New(rand.NewPCG(seed, 0x5707))}
	out := make([]string, n)
	for i := range out {
		out[i] = g.story()
	}
	return out
}
