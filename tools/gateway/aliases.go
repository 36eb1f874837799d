// aliases.go: the seeds' spellings of request fields, rewritten at the edge
// into campaignd's. This table is the only place they are known; the README's
// alias table is what `campaignd-gateway --aliases` prints of it (a test
// holds the two equal).
//
// A rename applies to one request message: a body field, or a query
// parameter of a GET route. Giving both the seed's and campaignd's spelling
// of one field is a 400 naming the seed's. Selector fields (seed 003's
// audience_type) choose which rename applies and are then dropped.
package main

import (
	"sort"
	"strings"
)

// rename rewrites field `seed` of message `message` (any request message
// when "*") into `ours`; `seeds` says where the spelling comes from.
type rename struct {
	message string
	seed    string
	ours    string
	seeds   string
	// The value the selector field must have for this rename to apply
	// ("" = always); see selector.
	when string
}

// selector is a field that says which of several renames applies and is
// not forwarded itself (audience_type: "tags" | "contact_ids").
type selector struct {
	message string
	field   string
}

const (
	createCampaign = "campaigns.v1.CreateCampaignRequest"
	updateCampaign = "campaigns.v1.UpdateCampaignRequest"
	listCampaigns  = "campaigns.v1.ListCampaignsRequest"
)

// bodyRenames: body fields of Create/UpdateCampaign.
var bodyRenames = expand([]string{createCampaign, updateCampaign}, []rename{
	{seed: "scheduled_at", ours: "schedule_at", seeds: "001, 003, 004"},
	{seed: "channel_id", ours: "sender_id", seeds: "003 (a sender's snd_ id)"},
	{seed: "account_id", ours: "sender_id", seeds: "004 (a sender's snd_ id)"},
	{seed: "variable_mappings", ours: "variable_mapping", seeds: "003"},
	{seed: "audience_tags", ours: "tags", seeds: "003", when: "tags"},
	{seed: "audience_contact_ids", ours: "contact_ids", seeds: "003", when: "contact_ids"},
})

var bodySelectors = []selector{
	{message: createCampaign, field: "audience_type"},
	{message: updateCampaign, field: "audience_type"},
}

// queryRenames: query parameters of the list routes.
var queryRenames = []rename{
	{message: "*", seed: "per_page", ours: "limit", seeds: "000"},
	{message: listCampaigns, seed: "account_id", ours: "sender_id", seeds: "004"},
	{message: listCampaigns, seed: "channel_id", ours: "sender_id", seeds: "003"},
}

// valueAlias is a seed's value of an enum query parameter.
type valueAlias struct {
	ours  string
	seeds string
}

// valueAliases: enum values the seeds use for campaignd's (any case), by
// "<request message>.<field>".
var valueAliases = map[string]map[string]valueAlias{
	listCampaigns + ".status": {
		"running":    {ours: "sending", seeds: "000"},
		"processing": {ours: "sending", seeds: "001"},
	},
}

func expand(messages []string, rs []rename) []rename {
	var out []rename
	for _, m := range messages {
		for _, r := range rs {
			r.message = m
			out = append(out, r)
		}
	}
	return out
}

// rewriteBody applies the body renames of `message` to one decoded JSON
// object in place.
func rewriteBody(message string, obj map[string]interface{}) error {
	for _, sel := range bodySelectors {
		if sel.message != message {
			continue
		}
		raw, present := obj[sel.field]
		delete(obj, sel.field)
		if !present || raw == nil {
			// Without a selector a conditional rename applies when its
			// field is given (audience_tags alone means tags).
			continue
		}
		var allowed []string
		for _, r := range bodyRenames {
			if r.message == message && r.when != "" {
				allowed = append(allowed, r.when)
			}
		}
		value, ok := raw.(string)
		value = strings.ToLower(value)
		if !ok || !contains(allowed, value) {
			return newFieldError(sel.field, "must be one of "+strings.Join(allowed, ", "))
		}
		for _, r := range bodyRenames {
			if r.message != message || r.when == "" {
				continue
			}
			_, given := obj[r.seed]
			if r.when == value && !given {
				return newFieldError(r.seed, "is required when "+sel.field+" is "+value)
			}
			if r.when != value && given {
				return newFieldError(r.seed, "does not go with "+sel.field+" "+value)
			}
		}
	}
	for _, r := range bodyRenames {
		if r.message != message {
			continue
		}
		if err := applyRename(obj, r); err != nil {
			return err
		}
	}
	return nil
}

func applyRename(obj map[string]interface{}, r rename) error {
	v, present := obj[r.seed]
	if !present {
		return nil
	}
	for _, ours := range []string{r.ours, lowerCamel(r.ours)} {
		if _, clash := obj[ours]; clash {
			return newFieldError(r.seed, "is the seeds' name for "+r.ours+"; give one of them")
		}
	}
	delete(obj, r.seed)
	obj[r.ours] = v
	return nil
}

// rewriteQueryKey is campaignd's name of a query parameter of `message`.
func rewriteQueryKey(message, key string) string {
	for _, r := range queryRenames {
		if (r.message == "*" || r.message == message) && r.seed == key {
			return r.ours
		}
	}
	return key
}

// rewriteQueryValue is campaignd's value for a seed's enum value of the
// query parameter `field` (its proto name) of `message`.
func rewriteQueryValue(message, field, value string) string {
	if aliases, ok := valueAliases[message+"."+field]; ok {
		if a, ok := aliases[strings.ToLower(value)]; ok {
			return a.ours
		}
	}
	return value
}

// lowerCamel is proto3 JSON's name of a snake_case field.
func lowerCamel(name string) string {
	var b strings.Builder
	upper := false
	for _, r := range name {
		if r == '_' {
			upper = true
			continue
		}
		if upper && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		upper = false
		b.WriteRune(r)
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// aliasTable is the table above as Markdown, in a fixed order: what
// `campaignd-gateway --aliases` prints and the README's alias table holds.
func aliasTable() string {
	var b strings.Builder
	b.WriteString("| where | the seeds' spelling | campaignd's | seeds |\n")
	b.WriteString("|---|---|---|---|\n")
	seen := map[string]bool{}
	row := func(where, seed, ours, seeds string) {
		line := "| " + where + " | " + seed + " | `" + ours + "` | " + seeds + " |\n"
		if !seen[line] {
			seen[line] = true
			b.WriteString(line)
		}
	}
	for _, r := range bodyRenames {
		seed := "`" + r.seed + "`"
		if r.when != "" {
			seed = "`audience_type: \"" + r.when + "\"` + " + seed
		}
		row("Create/UpdateCampaign body", seed, r.ours, r.seeds)
	}
	for _, r := range queryRenames {
		where := "every list's query"
		if r.message != "*" {
			where = "ListCampaigns query"
		}
		row(where, "`"+r.seed+"`", r.ours, r.seeds)
	}
	fields := make([]string, 0, len(valueAliases))
	for f := range valueAliases {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		values := make([]string, 0, len(valueAliases[f]))
		for v := range valueAliases[f] {
			values = append(values, v)
		}
		sort.Strings(values)
		for _, v := range values {
			a := valueAliases[f][v]
			where := "ListCampaigns query `" + f[strings.LastIndex(f, ".")+1:] + "=`"
			row(where, "`"+v+"` (any case)", a.ours, a.seeds)
		}
	}
	return b.String()
}
