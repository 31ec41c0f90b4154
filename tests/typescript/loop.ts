// The practice loop as a TypeScript app would write it: types generated from the live document by
// openapi-typescript (generated/api.d.ts), requests sent with openapi-fetch, compiled by tsc in strict mode.
// tests/api/test_typescript_client.py builds and runs it against a real server and reads the JSON summary
// printed on stdout. A field the document leaves optional, untyped or wrongly nullable fails to compile here
// (the annotated constants below say which type each value must have), before anything is sent.
//
// By hand, against a running service (scripts/serve) and an app's key:
//   npm ci && npm run generate -- http://127.0.0.1:5000/api/v1/openapi.json && npm run build
//   TUTOR_API_KEY=... npm run loop -- http://127.0.0.1:5000

import createClient from "openapi-fetch";

import type { paths } from "./generated/api.js";

type Paths = paths;
// The documented 404 of an operation: the error body a client reads when a student does not exist.
type NotFound = Paths["/api/v1/students/{student_id}/progress"]["get"]["responses"][404]["content"]["application/json"];
type AnswerKind = NonNullable<
    Paths["/api/v1/students/{student_id}/next-exercise"]["get"]["responses"][200]["content"]["application/json"]["exercise"]
>["answer_kind"];

function fail(message: string): never {
    throw new Error(message);
}

// Wrong for any exercise of its kind except a multiple choice, where the test checks the choice was wrong
// (a multiple select and an ordered exercise take a list: one choice; the items in the order served).
function wrongAnswer(kind: AnswerKind, choices: string[], items: string[]): string | string[] {
    switch (kind) {
        case "numeric":
            return "-98765.4321";
        case "fraction":
            return "-98765/4321";
        case "expression":
            return "-98765";
        case "short_text":
            return "certainly not the answer";
        case "multiple_choice":
            return choices[choices.length - 1] ?? fail("a multiple choice without choices");
        case "multiple_select":
            return [choices[choices.length - 1] ?? fail("a multiple select without choices")];
        case "ordered":
            return items;
    }
}

async function main(): Promise<void> {
    const baseUrl = process.argv[2] ?? fail("usage: node build/loop.js BASE_URL (key in TUTOR_API_KEY)");
    const key = process.env["TUTOR_API_KEY"] ?? fail("TUTOR_API_KEY is not set");
    const client = createClient<Paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

    const created = await client.POST("/api/v1/students", { body: { external_id: "ts-pupil-1" } });
    const student = created.data ?? fail(`create: ${created.response.status} ${JSON.stringify(created.error)}`);
    const studentId: string = student.id;
    const path = { student_id: studentId };

    const next = await client.GET("/api/v1/students/{student_id}/next-exercise", { params: { path } });
    const chosen = next.data ?? fail(`next: ${next.response.status} ${JSON.stringify(next.error)}`);
    const exercise = chosen.exercise ?? fail(`nothing to practise: ${chosen.reason}`);
    const prompt: string = exercise.prompt;
    const skillId: string = chosen.skill_id ?? fail("an exercise without a skill");

    const answer = async (body: { answer: string | string[] } | { correct: boolean }, exerciseId: string) => {
        const sent = await client.POST("/api/v1/students/{student_id}/responses", {
            params: { path },
            body: { exercise_id: exerciseId, response_time_ms: 4000, ...body },
        });
        return sent.data ?? fail(`answer: ${sent.response.status} ${JSON.stringify(sent.error)}`);
    };
    const wrongText = wrongAnswer(exercise.answer_kind, exercise.choices, exercise.items);
    const wrong = await answer({ answer: wrongText }, exercise.id);
    const correctAnswer: string = wrong.correct_answer;
    const right = await answer({ answer: correctAnswer }, exercise.id);
    const estimateAfterWrong: number | null = wrong.mastery_estimate[skillId] ?? fail("no estimate of the skill");
    const estimateAfterRight: number | null = right.mastery_estimate[skillId] ?? fail("no estimate of the skill");

    const again = await client.GET("/api/v1/students/{student_id}/next-exercise", { params: { path } });
    const second = again.data?.exercise ?? fail(`next: ${again.response.status}`);
    const byApp = await answer({ correct: true }, second.id);

    const standing = await client.GET("/api/v1/students/{student_id}/progress", { params: { path } });
    const progress = standing.data ?? fail(`progress: ${standing.response.status}`);
    const practised = progress.skills.find((skill) => skill.skill_id === skillId) ?? fail("skill not in progress");
    const attempts: number = practised.attempts;
    const estimate: number = practised.mastery_estimate;

    const missing = await client.GET("/api/v1/students/{student_id}/progress", {
        params: { path: { student_id: "no-such-student" } },
    });
    if (missing.data !== undefined) fail("an unknown student had progress");
    const notFound: NotFound = missing.error;
    const errorCode: number = notFound.code;
    const errorMessage: string = notFound.message;

    console.log(
        JSON.stringify({
            student_id: studentId,
            created_status: created.response.status,
            exercise_id: exercise.id,
            prompt,
            skill_id: skillId,
            wrong: { answer: wrongText, correct: wrong.correct, graded_by: wrong.graded_by },
            right: { answer: correctAnswer, correct: right.correct, graded_by: right.graded_by },
            estimate_after_wrong: estimateAfterWrong,
            estimate_after_right: estimateAfterRight,
            by_app: { exercise_id: second.id, correct: byApp.correct, graded_by: byApp.graded_by },
            progress: { skills_total: progress.skills_total, attempts, mastery_estimate: estimate },
            not_found: { status: missing.response.status, code: errorCode, message: errorMessage },
        }),
    );
}

main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
});
