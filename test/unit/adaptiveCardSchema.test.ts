// Our strict Adaptive Card schema (test/schemas/adaptive-card-1.5.schema.json) accepts what kv-responder sends and
// rejects the mistakes a hand-built card makes: typos, unknown element types, missing required values, wrong enums.
import {
    asTeamsMessage,
    sampleAlertCard,
    validateAdaptiveCard,
    validateTeamsWebhookMessage,
} from '../support/adaptiveCard';
import schema from '../schemas/adaptive-card-1.5.schema.json';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- cards are edited freely to break them
type Json = Record<string, any>;

/** A deep copy of the sample card, changed by `edit`. */
function cardWith(edit: (card: Json) => void): Json {
    const card = structuredClone(sampleAlertCard()) as Json;
    edit(card);
    return card;
}

describe('the Adaptive Card schema', () => {
    it('says at its top what it is and where the facts come from', () => {
        expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
        expect(schema.$comment).toMatch(/strict subset/i);
        expect(schema.$comment).toContain('https://adaptivecards.io/explorer/');
    });

    it('accepts a realistic alert card and its Teams webhook envelope', () => {
        const card = sampleAlertCard();
        expect(validateAdaptiveCard(card)).toEqual([]);
        expect(validateTeamsWebhookMessage(asTeamsMessage(card))).toEqual([]);
    });

    it('accepts every documented value of the enums it models', () => {
        const card = cardWith((c) => {
            c.body = [
                ...['default', 'emphasis', 'good', 'attention', 'warning', 'accent'].map((style) => ({
                    type: 'Container',
                    style,
                    items: [{ type: 'TextBlock', text: style }],
                })),
                ...['default', 'dark', 'light', 'accent', 'good', 'warning', 'attention'].map((color) => ({
                    type: 'TextBlock',
                    text: color,
                    color,
                })),
                ...['default', 'small', 'medium', 'large', 'extraLarge'].map((size) => ({
                    type: 'TextBlock',
                    text: size,
                    size,
                    fontType: 'monospace',
                    horizontalAlignment: 'center',
                    maxLines: 2,
                })),
                { type: 'Image', url: 'https://example.com/shield.png', altText: 'shield', size: 'small' },
            ];
            c.actions = [
                ...['default', 'positive', 'destructive'].map((style) => ({
                    type: 'Action.OpenUrl',
                    title: style,
                    url: 'https://example.com/',
                    style,
                })),
                {
                    type: 'Action.ShowCard',
                    title: 'Details',
                    card: { type: 'AdaptiveCard', body: [{ type: 'TextBlock', text: 'nested, no version needed' }] },
                },
            ];
        });
        expect(validateAdaptiveCard(card)).toEqual([]);
    });

    it('rejects a misspelt property (additionalProperties: false)', () => {
        const card = cardWith((c) => {
            c.body[0].items[0].wrapp = true;
        });
        expect(validateAdaptiveCard(card)).toEqual(["/body/0/items/0: must NOT have additional property 'wrapp'"]);
    });

    it('rejects a misspelt property on the card itself and on msteams', () => {
        const card = cardWith((c) => {
            c.fallbacktext = 'x';
            c.msteams = { widht: 'Full' };
        });
        expect(validateAdaptiveCard(card)).toEqual([
            "/: must NOT have additional property 'fallbacktext'",
            "/msteams: must NOT have additional property 'widht'",
        ]);
    });

    it('rejects unknown element and action types', () => {
        const card = cardWith((c) => {
            c.body.push({ type: 'TextBlok', text: 'typo in the type' });
            c.body.push({ type: 'Carousel', pages: [] });
            c.actions.push({ type: 'Action.Submit', title: 'Send', data: {} });
        });
        const errors = validateAdaptiveCard(card);
        expect(errors).toEqual([
            expect.stringMatching(/^\/body\/3\/type: must be one of "TextBlock", "RichTextBlock"/),
            expect.stringMatching(/^\/body\/4\/type: must be one of/),
            '/actions/3/type: must be one of "Action.OpenUrl", "Action.ShowCard"',
        ]);
    });

    it('rejects an Action.OpenUrl without a url, or with a non-https one', () => {
        const missing = cardWith((c) => {
            delete c.actions[0].url;
        });
        expect(validateAdaptiveCard(missing)).toEqual(["/actions/0: must have required property 'url'"]);
        const insecure = cardWith((c) => {
            c.actions[1].url = 'http://kvr-func.azurewebsites.net/api/undo/inc-7f3a91';
        });
        expect(validateAdaptiveCard(insecure)).toEqual([
            expect.stringMatching(/^\/actions\/1\/url: must match pattern/),
        ]);
    });

    it('rejects a fact without a value, and a FactSet without facts', () => {
        const noValue = cardWith((c) => {
            delete c.body[1].facts[2].value;
        });
        expect(validateAdaptiveCard(noValue)).toEqual(["/body/1/facts/2: must have required property 'value'"]);
        const empty = cardWith((c) => {
            c.body[1].facts = [];
        });
        expect(validateAdaptiveCard(empty)).toEqual(['/body/1/facts: must NOT have fewer than 1 items']);
    });

    it.each([
        ['a Container style', (c: Json) => (c.body[0].style = 'danger'), '/body/0/style'],
        ['a TextBlock color', (c: Json) => (c.body[0].items[0].color = 'red'), '/body/0/items/0/color'],
        ['a TextBlock size (case matters)', (c: Json) => (c.body[0].items[0].size = 'Large'), '/body/0/items/0/size'],
        ['a TextBlock style', (c: Json) => (c.body[0].items[0].style = 'title'), '/body/0/items/0/style'],
        ['a TextBlock weight', (c: Json) => (c.body[0].items[0].weight = 'bold'), '/body/0/items/0/weight'],
        ['a spacing', (c: Json) => (c.body[1].spacing = 'huge'), '/body/1/spacing'],
        ['an action style', (c: Json) => (c.actions[0].style = 'primary'), '/actions/0/style'],
        [
            'a column vertical alignment',
            (c: Json) => (c.body[2].items[2].columns[0].verticalContentAlignment = 'middle'),
            '/body/2/items/2/columns/0/verticalContentAlignment',
        ],
        ['msteams.width', (c: Json) => (c.msteams.width = 'full'), '/msteams/width'],
        ['the card version', (c: Json) => (c.version = '1.6'), '/version'],
    ])('rejects a wrong enum value: %s', (_what, edit, path) => {
        const errors = validateAdaptiveCard(cardWith(edit));
        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatch(new RegExp(`^${path.replace(/\//g, '\\/')}: must be`));
    });

    it('rejects a wrong column width and a missing required text', () => {
        const card = cardWith((c) => {
            c.body[2].items[2].columns[0].width = 'wide';
            delete c.body[2].items[0].text;
        });
        const errors = validateAdaptiveCard(card);
        expect(errors).toContain("/body/2/items/0: must have required property 'text'");
        expect(errors.some((e) => e.startsWith('/body/2/items/2/columns/0/width'))).toBe(true);
    });

    it('requires a version on the top-level card only', () => {
        const card = cardWith((c) => {
            delete c.version;
        });
        expect(validateAdaptiveCard(card)).toEqual(["/: must have required property 'version'"]);
    });

    describe('the Teams Workflows webhook envelope', () => {
        it('rejects a 1.5 card, which the Workflows flow does not display', () => {
            const card = cardWith((c) => {
                c.version = '1.5';
            });
            expect(validateAdaptiveCard(card)).toEqual([]);
            expect(validateTeamsWebhookMessage(asTeamsMessage(card))).toEqual([
                '/attachments/0/content/version: must be one of "1.0", "1.1", "1.2", "1.3", "1.4"',
            ]);
        });

        it('rejects a wrong message type, attachment content type and an invalid card inside', () => {
            const message = asTeamsMessage(
                cardWith((c) => {
                    c.actions[2].titel = 'typo';
                }),
            ) as Json;
            message.type = 'MessageCard';
            message.attachments[0].contentType = 'application/vnd.microsoft.card.hero';
            expect(validateTeamsWebhookMessage(message)).toEqual([
                '/type: must be "message"',
                '/attachments/0/contentType: must be "application/vnd.microsoft.card.adaptive"',
                "/attachments/0/content/actions/2: must NOT have additional property 'titel'",
            ]);
        });

        it('rejects an envelope without attachments', () => {
            expect(validateTeamsWebhookMessage({ type: 'message', attachments: [] })).toEqual([
                '/attachments: must NOT have fewer than 1 items',
            ]);
        });
    });
});
