// A program that embeds the engine through its public header alone (include/ipt/ipt.h): load a
// model, stream a completion, continue the same session, score the prompt.
//
//   example_complete MODEL_DIR "Once upon a time" [MAX_TOKENS]
#include <ipt/ipt.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR PROMPT [MAX_TOKENS]\n";
    return 2;
  }
  try {
    const ipt::Model model = ipt::Model::load(argv[1]);
    ipt::Session session(model);
    ipt::GenerateOptions options;
    options.max_tokens = argc > 3 ? std::stoll(argv[3]) : 24;
    const auto print = [](const std::string& text) {
      std::cout << text << std::flush;
      return true;  // keep going
    };
    const ipt::Completion first = session.complete(argv[2], options, print);
    std::cout << "\n--- the same session continues ---\n";
    const ipt::Completion second = session.complete("\n", options, print);
    std::cout << "\n";
    const ipt::Score score = model.score(argv[2]);
    std::cerr << first.prompt_tokens << " prompt tokens; generated " << first.completion_tokens << " ("
              << first.finish_reason << ") then " << second.completion_tokens << " (" << second.finish_reason
              << "); session holds " << session.position() << " tokens, " << session.ttt_updates()
              << " fast-weight updates; prompt perplexity " << score.perplexity << "\n";
    return first.completion_tokens + second.completion_tokens > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
